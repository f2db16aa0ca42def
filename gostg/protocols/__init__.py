"""Sans-IO wire formats shared by handlers (server side) and connectors (client side).

Every function here takes and returns bytes, raises ``NeedData`` when more bytes are needed
and ``ProtocolError`` when the bytes can never become a valid message. Nothing touches a socket.
"""

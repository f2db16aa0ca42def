"""Static host mappings, consulted before any resolver (GOST ``hosts`` objects)."""
import ipaddress


class Hosts:
    def __init__(self, name, mappings):
        self.name = name
        self._map = {}
        for hostname, ip in mappings:
            ipaddress.ip_address(ip)  # validate early: a bad IP is a config error
            self._map.setdefault(hostname.lower().rstrip("."), []).append(ip)

    def lookup(self, host, prefer="ipv4"):
        """IPs for ``host``: exact name, then ``.domain`` entries of it and its parents."""
        h = host.lower().rstrip(".")
        ips = self._map.get(h)
        if ips is None:
            ips = self._map.get("." + h)
            parts = h.split(".")
            i = 1
            while ips is None and i < len(parts):
                ips = self._map.get("." + ".".join(parts[i:]))
                i += 1
        if not ips:
            return []
        v4 = [ip for ip in ips if ":" not in ip]
        v6 = [ip for ip in ips if ":" in ip]
        return v6 + v4 if prefer == "ipv6" else v4 + v6

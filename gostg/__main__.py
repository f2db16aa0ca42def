"""``python -m gostg``: the same as the ``gostg`` command (gevent is patched by the command
line itself, when it serves)."""
if __name__ == "__main__":
    from gostg.cli import main

    raise SystemExit(main())

"""``python -m gostg``: the same as the ``gostg`` command (gevent patched first)."""
if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

    from gostg.cli import main

    raise SystemExit(main())

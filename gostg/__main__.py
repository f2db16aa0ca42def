from gevent import monkey

monkey.patch_all()

from gostg.cli import main  # noqa: E402

raise SystemExit(main())

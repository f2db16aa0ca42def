import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements():
    with open(os.path.join(HERE, "requirements.txt")) as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


#: ``pip install 'gostg[grpc]'``: GOST's gRPC plugins (``plugin: {type: grpc}``, GOST's default
#: plugin type). Optional: grpcio is a large native wheel most setups never load; a config that
#: names a gRPC plugin without it is refused with this command in the message.
#: requirements-dev.txt pins the same versions (tests/unit/test_plugin_grpc.py checks).
GRPC_EXTRA = ["grpcio==1.85.1", "protobuf==7.36.2"]


setup(
    name="gostg",
    version="0.1.0",
    description="GOST v3 (GO Simple Tunnel) rebuilt in Python on gevent",
    packages=find_packages(include=["gostg", "gostg.*"]),
    package_data={"gostg.api": ["swagger.yaml", "ui/*"]},
    python_requires=">=3.11",
    install_requires=requirements(),
    extras_require={"grpc": GRPC_EXTRA},
    # `pip install .` puts a `gostg` command next to the interpreter (.venv/bin/gostg);
    # gostg.cli.run() patches gevent before anything else is imported. bin/gostg stays for
    # running from a checkout without installing (the tests use it).
    entry_points={"console_scripts": ["gostg = gostg.cli:run"]},
    license="MIT",
)

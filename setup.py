import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements():
    with open(os.path.join(HERE, "requirements.txt")) as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


setup(
    name="gostg",
    version="0.1.0",
    description="GOST v3 (GO Simple Tunnel) rebuilt in Python on gevent",
    packages=find_packages(include=["gostg", "gostg.*"]),
    package_data={"gostg.api": ["swagger.yaml", "ui/*"]},
    python_requires=">=3.11",
    install_requires=requirements(),
    # `pip install .` puts a `gostg` command next to the interpreter (.venv/bin/gostg);
    # gostg.cli.run() patches gevent before anything else is imported. bin/gostg stays for
    # running from a checkout without installing (the tests use it).
    entry_points={"console_scripts": ["gostg = gostg.cli:run"]},
    license="MIT",
)

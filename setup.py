from setuptools import find_packages, setup

setup(
    name="gostg",
    version="0.1.0",
    description="GOST v3 (GO Simple Tunnel) rebuilt in Python on gevent",
    packages=find_packages(include=["gostg", "gostg.*"]),
    python_requires=">=3.11",
    install_requires=[line.strip() for line in open("requirements.txt") if line.strip() and not line.startswith("#")],
    scripts=["bin/gostg"],
    license="MIT",
)

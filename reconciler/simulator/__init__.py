"""simulator: a faithful VyOS HTTP API simulator serving a fleet of virtual devices on
loopback, plus the simulated ISO format that tests and the demo build and sign.

It never talks to anything but loopback and the image URLs it is asked to fetch.
"""

"""simulator: a faithful VyOS HTTP API simulator for tests, benchmarks and the demo.

It owns the virtual devices and their fleet, the HTTP server that serves them on loopback,
fault injection, and the simulated ISO format that tests and the demo build and sign.

It must never talk to anything but loopback and the image URLs it is asked to fetch, and
never import source, devices, images, rollout or report: it stands in for the routers,
outside the pipeline.
"""

__all__: list[str] = []

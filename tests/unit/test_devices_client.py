"""Client contract: exact VyOS envelopes, content type, status codes and error texts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from reconciler.clock import FakeClock
from reconciler.devices.client import ClientSettings, VyOSClient
from reconciler.devices.endpoint import Endpoint, TlsSettings, endpoint_for
from reconciler.devices.transport import make_http_client, ssl_for
from reconciler.errors import (
    AuthError,
    CommandError,
    DeviceServerError,
    Unreachable,
    Unsupported,
    UpstreamTimeout,
    summarize,
)
from reconciler.model.kinds import Device

KEY = "planted-secret-key-0042"
TABLE = (
    "Name                      Default boot    Running\n"
    "------------------------  --------------  ---------\n"
    "2025.01.10-0020-rolling   Yes\n"
    "1.5-rolling-202410230007                  Yes\n"
)


def _env(data: Any = None, error: str | None = None, status: int = 200) -> Response:
    body = json.dumps({"success": error is None, "data": data, "error": error})
    return Response(body, status=status, content_type="text/html")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client() as client:
        yield client


def _client(server: HTTPServer, http: httpx.AsyncClient, **settings: Any) -> VyOSClient:
    endpoint = Endpoint(name="edge1", base_url=server.url_for("/prefix/edge1"), api_key=KEY)
    base = {"read_attempts": 1, "backoff": 0.01, "poll_interval": 1.0}
    return VyOSClient(
        endpoint, http, settings=ClientSettings(**{**base, **settings}),
        clock=FakeClock(autojump=True),
    )  # fmt: skip


async def test_json_body_with_key_and_path_prefix(
    httpserver: HTTPServer, http: httpx.AsyncClient
) -> None:
    httpserver.expect_request(
        "/prefix/edge1/show", method="POST",
        json={"key": KEY, "op": "show", "path": ["system", "image"]},
    ).respond_with_response(_env(TABLE))  # fmt: skip
    images = await _client(httpserver, http).images()
    assert [(i.name, i.default, i.running) for i in images] == [
        ("2025.01.10-0020-rolling", True, False),
        ("1.5-rolling-202410230007", False, True),
    ]


async def test_form_encoding_sends_data_and_key(
    httpserver: HTTPServer, http: httpx.AsyncClient
) -> None:
    seen: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        seen.append(dict(request.form))
        return _env("ok")

    httpserver.expect_request("/prefix/edge1/config-file").respond_with_handler(handler)
    await _client(httpserver, http, encoding="form").config_file_save()
    assert seen == [{"data": json.dumps({"op": "save"}), "key": KEY}]


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (401, "Valid API key is required", AuthError),
        (400, "'x' is not a valid operation", CommandError),
        (400, "&#x27;x&#x27; is not a valid operation", CommandError),
        (500, "Internal Server Error", DeviceServerError),
    ],
)
async def test_error_mapping(
    httpserver: HTTPServer, http: httpx.AsyncClient, status: int, error: str, kind: type[Exception]
) -> None:
    httpserver.expect_request("/prefix/edge1/show").respond_with_response(_env(None, error, status))
    with pytest.raises(kind) as e:
        await _client(httpserver, http).show(["x"])
    assert "'x' is not" in str(e.value) or status != 400


async def test_504_html_page_is_upstream_timeout(
    httpserver: HTTPServer, http: httpx.AsyncClient
) -> None:
    page = "<html><head><title>504 Gateway Time-out</title></head></html>"
    httpserver.expect_request("/prefix/edge1/config-file").respond_with_data(
        page, status=504, content_type="text/html"
    )
    with pytest.raises(UpstreamTimeout):
        await _client(httpserver, http).config_file_save()


async def test_image_add_after_504_polls_instead_of_re_adding(
    httpserver: HTTPServer, http: httpx.AsyncClient
) -> None:
    adds: list[str] = []
    shows = 0

    def handler(request: Request) -> Response:
        nonlocal shows
        body = request.get_json()
        if request.path.endswith("/image"):
            adds.append(body["url"])
            return Response("<html>504</html>", status=504, content_type="text/html")
        shows += 1
        return _env(TABLE if shows > 1 else TABLE.replace("2025.01.10-0020-rolling   Yes\n", ""))

    httpserver.expect_request("/prefix/edge1/image").respond_with_handler(handler)
    httpserver.expect_request("/prefix/edge1/show").respond_with_handler(handler)
    out = await _client(httpserver, http).image_add("http://dist/x.iso")
    assert adds == ["http://dist/x.iso"] and shows == 2  # a snapshot, then one poll
    assert "2025.01.10-0020-rolling" in out


async def test_set_default_already_and_unsupported(
    httpserver: HTTPServer, http: httpx.AsyncClient
) -> None:
    client = _client(httpserver, http)
    httpserver.expect_oneshot_request("/prefix/edge1/image").respond_with_response(
        _env(None, 'The image "1.5-x" already configured as default', 400)
    )
    assert "already configured" in await client.image_set_default("1.5-x")
    httpserver.expect_oneshot_request("/prefix/edge1/image").respond_with_response(
        _env(None, "'set_default' is not a valid operation", 400)
    )
    with pytest.raises(Unsupported):
        await client.image_set_default("1.4.3")


async def test_info_falls_back_to_show_version(
    httpserver: HTTPServer, http: httpx.AsyncClient
) -> None:
    httpserver.expect_request("/prefix/edge1/info", method="GET").respond_with_json(
        {"detail": "Not Found"}, status=404
    )
    version = "Version:          VyOS 1.4.3\nRelease flavor:   generic\nArchitecture:     aarch64\n"
    httpserver.expect_request("/prefix/edge1/show").respond_with_response(_env(version))
    info = await _client(httpserver, http).info()
    assert (info.version, info.architecture, info.flavor) == ("1.4.3", "arm64", "generic")


async def test_info_on_rolling(httpserver: HTTPServer, http: httpx.AsyncClient) -> None:
    data = {"version": "2025.01.10-0020-rolling", "hostname": "edge1", "banner": ""}
    httpserver.expect_request("/prefix/edge1/info", method="GET").respond_with_response(_env(data))
    info = await _client(httpserver, http).info()
    assert (info.version, info.hostname) == ("2025.01.10-0020-rolling", "edge1")


async def test_reads_retry_with_backoff_writes_do_not(
    httpserver: HTTPServer, http: httpx.AsyncClient
) -> None:
    httpserver.expect_request("/prefix/edge1/show").respond_with_response(_env(None, "boom", 503))
    httpserver.expect_request("/prefix/edge1/config-file").respond_with_response(
        _env(None, "boom", 503)
    )
    clock = FakeClock(autojump=True)
    endpoint = Endpoint(name="edge1", base_url=httpserver.url_for("/prefix/edge1"), api_key=KEY)
    settings = ClientSettings(read_attempts=3, backoff=1.0, backoff_max=8.0)
    client = VyOSClient(endpoint, http, settings=settings, clock=clock, jitter=lambda: 1.0)
    with pytest.raises(DeviceServerError):
        await client.show(["version"])
    assert clock.monotonic() == 3.0  # 1 s then 2 s
    with pytest.raises(DeviceServerError):
        await client.config_file_save()
    paths = [r.path for r, _ in httpserver.log]
    assert paths.count("/prefix/edge1/show") == 3 and paths.count("/prefix/edge1/config-file") == 1


async def test_reboot_dropped_connection_is_success(http: httpx.AsyncClient) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    endpoint = Endpoint(name="edge1", base_url="http://127.0.0.1:9/x", api_key=KEY)
    async with httpx.AsyncClient(transport=httpx.MockTransport(drop)) as mock:
        await VyOSClient(endpoint, mock).reboot()
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as mock:
        with pytest.raises(Unreachable):
            await VyOSClient(endpoint, mock).reboot()


async def test_api_key_never_leaks(httpserver: HTTPServer, http: httpx.AsyncClient) -> None:
    # A device that echoes the key back in its error text.
    httpserver.expect_request("/prefix/edge1/show").respond_with_response(
        _env(None, f"bad request key={KEY} from {KEY}", 400)
    )
    client = _client(httpserver, http)
    with pytest.raises(CommandError) as e:
        await client.show(["version"])
    assert KEY not in str(e.value) and KEY not in e.value.detail
    assert KEY not in repr(client) and KEY not in repr(client.endpoint)
    assert KEY not in summarize(e.value).message
    dead = Endpoint(name="d", base_url=f"http://user:{KEY}@127.0.0.1:9", api_key=KEY)
    with pytest.raises(Unreachable) as u:
        await VyOSClient(dead, http, settings=ClientSettings(read_attempts=1)).show(["version"])
    assert KEY not in str(u.value)


def test_endpoint_from_device_and_tls_modes() -> None:
    device = Device.model_validate(
        {
            "apiVersion": "gitfirm.io/v1", "kind": "Device", "metadata": {"name": "edge1"},
            "spec": {
                "address": "https://10.0.0.1:8443/api/", "site": "ams",
                "credentials": {"apiKey": {"env": "K"}}, "tls": {"fingerprint": "ab" * 32},
            },
        }
    )  # fmt: skip
    endpoint = endpoint_for(device, KEY)
    assert endpoint.base_url == "https://10.0.0.1:8443/api"
    assert endpoint.url("/show") == "https://10.0.0.1:8443/api/show"
    assert endpoint.tls == TlsSettings(fingerprint="ab" * 32)
    assert KEY not in repr(endpoint)
    assert ssl_for(TlsSettings()) is True
    assert ssl_for(TlsSettings(insecure=True)) is False
    assert type(ssl_for(endpoint.tls)).__name__ == "Fingerprint"

"""Which addresses a webhook may reach (decision 0094): public unicast only, whatever the spelling."""

from __future__ import annotations

import pytest

from yuyue.kit import addresses


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "not-an-address",
    ],
)
def test_not_public(address: str) -> None:
    assert not addresses.is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public(address: str) -> None:
    assert addresses.is_public(address)


async def test_pinned_keeps_host_and_tls_name(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("partner.test", 8443)
        return ["2606:4700:4700::1111"]

    monkeypatch.setattr(addresses, "resolve", resolve)
    target = await addresses.pinned("https://partner.test:8443/hook?x=1")
    assert target.url == "https://[2606:4700:4700::1111]:8443/hook?x=1"
    assert target.headers == {"Host": "partner.test:8443"}
    assert target.extensions == {"sni_hostname": "partner.test"}

"""The client's address on the nginx site's unix socket comes from exactly one valid X-Real-IP, or not at all."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from appdeb.runtime.site_client import real_ip, scheme


def test_one_address_from_nginx_is_taken_normalised() -> None:
    assert real_ip([("HOST", "x"), ("X-REAL-IP", "203.0.113.7")]) == "203.0.113.7"  # gunicorn's names
    assert real_ip([(b"x-real-ip", b" 2001:DB8::0:1 ")]) == "2001:db8::1"  # uvicorn's byte pairs


def test_anything_but_exactly_one_valid_address_gives_none() -> None:
    assert real_ip([]) is None
    assert real_ip([("X-REAL-IP", "203.0.113.7"), ("X-REAL-IP", "198.51.100.1")]) is None
    for bad in ("", "unix:", "203.0.113.7, 10.0.0.1", "203.0.113.7\r\nX: y", "localhost", "1.2.3.4:80", "::1%eth0/"):
        assert real_ip([("X-REAL-IP", bad)]) is None, bad
    assert real_ip([("X-FORWARDED-FOR", "203.0.113.7")]) is None  # only nginx's own header is read


@given(st.lists(st.tuples(st.sampled_from(["X-REAL-IP", "x-real-ip", "HOST"]), st.text(max_size=50)), max_size=4))
def test_whatever_comes_in_the_answer_is_an_ip_address_or_none(headers: list[tuple[str, str]]) -> None:
    got = real_ip(headers)
    assert got is None or str(ipaddress.ip_address(got)) == got


def test_the_scheme_is_nginxs_one_http_or_https_value() -> None:
    assert scheme([("X-FORWARDED-PROTO", "https")]) == "https"
    assert scheme([(b"x-forwarded-proto", b" HTTP ")]) == "http"
    for headers in ([], [("X-FORWARDED-PROTO", "https"), ("X-FORWARDED-PROTO", "http")],
                    [("X-FORWARDED-PROTO", "ftp")], [("X-FORWARDED-PROTO", "https, http")],
                    [("X-FORWARDED-SSL", "on")]):
        assert scheme(headers) is None, headers


@given(st.lists(st.tuples(st.sampled_from(["X-FORWARDED-PROTO", "x-forwarded-proto", "HOST"]), st.text(max_size=20)),
                max_size=4))
def test_whatever_comes_in_the_scheme_is_http_https_or_none(headers: list[tuple[str, str]]) -> None:
    assert scheme(headers) in ("http", "https", None)

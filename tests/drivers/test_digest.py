"""HTTP digest authentication against the published RFC 7616 example."""

from __future__ import annotations

import base64

import pytest

from drivers.digest import DigestClient, DigestVerifier, basic_matches, parse_params, response

# RFC 7616 section 3.9.1: user Mufasa, password "Circle of Life", GET /dir/index.html
RFC = {"username": "Mufasa", "realm": "http-auth@example.org", "password": "Circle of Life",
       "method": "GET", "uri": "/dir/index.html",
       "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "nc": "00000001",
       "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "qop": "auth"}


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_responses_match_the_rfc_7616_example(algorithm: str, expected: str) -> None:
    assert response(algorithm, **RFC) == expected


def test_client_answers_the_rfc_challenge() -> None:
    client = DigestClient("Mufasa", "Circle of Life", cnonce=lambda: RFC["cnonce"])
    client.challenged('Digest realm="http-auth@example.org", qop="auth, auth-int", '
                      'algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                      'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    params = parse_params(client.authorization("GET", "/dir/index.html"))
    assert params["response"] == ("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5"
                                  "856cb6c1")
    assert (params["nc"], params["qop"], params["opaque"]) == (
        "00000001", "auth", "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    assert parse_params(client.authorization("GET", "/dir/index.html"))["nc"] == "00000002"


def test_verifier_accepts_its_own_challenge_answered_and_nothing_else() -> None:
    verifier = DigestVerifier("scgw", key=b"k" * 32, nonce_lifetime_s=60)
    client = DigestClient("door", "door-password")
    client.challenged(verifier.challenge(1000.0))
    good = client.authorization("POST", "/hikvision/door-1")
    assert verifier.check(good, "POST", "door", "door-password", 1010.0).ok
    wrong = verifier.check(good, "POST", "door", "another-password", 1010.0)
    assert (wrong.ok, wrong.reason) == (False, "wrong user name or password")
    assert not verifier.check(good, "GET", "door", "door-password", 1010.0).ok
    stale = verifier.check(good, "POST", "door", "door-password", 1061.0)
    assert (stale.ok, stale.stale) == (False, True)
    forged = DigestVerifier("scgw", key=b"x" * 32)
    other = DigestClient("door", "door-password")
    other.challenged(forged.challenge(1000.0))
    assert verifier.check(other.authorization("POST", "/"), "POST", "door", "door-password",
                          1001.0).reason == "a nonce the gateway did not issue"
    assert not verifier.check("Basic Zm9vOmJhcg==", "POST", "door", "x", 1000.0).ok


def test_basic_credentials_compare_exactly() -> None:
    header = "Basic " + base64.b64encode(b"door:door-password").decode()
    assert basic_matches(header, "door", "door-password")
    assert not basic_matches(header, "door", "door-passwor")
    assert not basic_matches("Basic !!!", "door", "door-password")


def test_a_captured_authorization_cannot_be_replayed() -> None:
    verifier = DigestVerifier("scgw", key=b"k" * 32, nonce_lifetime_s=60, max_nonces=2)
    client = DigestClient("door", "door-password")
    client.challenged(verifier.challenge(1000.0))
    first = client.authorization("POST", "/hikvision/door-1")
    assert verifier.check(first, "POST", "door", "door-password", 1001.0).ok
    replay = verifier.check(first, "POST", "door", "door-password", 1002.0)
    assert (replay.ok, replay.reason, replay.stale) == (
        False, "replayed: nonce count already used", True)
    # the same nonce with the next count is the client's next request
    assert verifier.check(client.authorization("POST", "/hikvision/door-1"), "POST", "door",
                          "door-password", 1003.0).ok
    # nonces forgotten for room are refused, not accepted afresh
    for at in (1004.0, 1005.0):
        other = DigestClient("door", "door-password")
        other.challenged(verifier.challenge(at))
        assert verifier.check(other.authorization("POST", "/"), "POST", "door",
                              "door-password", at).ok
    again = verifier.check(client.authorization("POST", "/hikvision/door-1"), "POST", "door",
                           "door-password", 1006.0)
    assert (again.ok, again.reason) == (False, "nonce forgotten for room")


def test_challenges_at_one_instant_have_nonces_of_their_own() -> None:
    # two terminals challenged within the same clock tick count their requests apart
    verifier = DigestVerifier("scgw", key=b"k" * 32)
    first, second = DigestClient("a", "pa"), DigestClient("b", "pb")
    first.challenged(verifier.challenge(1000.0))
    second.challenged(verifier.challenge(1000.0))
    assert verifier.check(first.authorization("POST", "/a"), "POST", "a", "pa", 1000.0).ok
    assert verifier.check(second.authorization("POST", "/b"), "POST", "b", "pb", 1000.0).ok

"""OneNET's signature and secure-mode encryption against an independent implementation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.onenet.message import LifeCycle, Notify, parse_envelope, parse_message
from drivers.onenet.signature import UndecryptableError, decrypt, encrypt, sign, verify

TOKEN = "onenet-instance-token"
KEY = "A1b2C3d4E5f6G7h8"
# The lifeCycle example of OneNET Studio's rule-engine message formats (规则引擎, 消息源格式,
# "设备生命周期数据"), with status offline
LIFE_CYCLE = ('{"messageType":"lifeCycle","productId":"00001","deviceName":"iot-0001",'
              '"data":{"status":"offline","time":1524448722123}}')
# Computed with OpenSSL, not with the gateway's code:
#   printf %s "$LIFE_CYCLE" | openssl enc -aes-128-cbc -K <hex of KEY> -iv <hex of KEY> -base64 -A
CIPHERTEXT = ("uEq6Kqdzo8OkxBvO7weVxnw7m730iRvVTwDyX9PEWH/I3fy6y2lk5md2rV1DPMg85tJjY7aKVXNPhalFCd"
              "D7754pujSXzLbI6EFnzkEXRhE7nBbi44Gu9EpOy1ornzX/CytWo51G1Bz27FiMajEYLGtFNe78se9uOPxR"
              "MErCpew=")
#   printf %s "${TOKEN}abcdefgh$LIFE_CYCLE" | openssl dgst -md5 -binary | base64
SIGNATURE = "Gj29Hg9wnEfIVMByM1MpzQ=="


def test_signature_and_decryption_match_openssl() -> None:
    assert sign(TOKEN, "abcdefgh", LIFE_CYCLE) == SIGNATURE
    assert verify(TOKEN, "abcdefgh", LIFE_CYCLE, SIGNATURE)
    assert decrypt(KEY, CIPHERTEXT) == LIFE_CYCLE
    assert encrypt(KEY, LIFE_CYCLE) == CIPHERTEXT  # the IV is the key: deterministic


def test_a_signature_read_from_an_unencoded_query_still_verifies() -> None:
    # '+' of Base64 sent unencoded in a query string arrives as a space
    nonce = next(n for n in (f"n{i:07d}" for i in range(1000)) if "+" in sign(TOKEN, n, "hi"))
    signed = sign(TOKEN, nonce, "hi")
    assert verify(TOKEN, nonce, "hi", signed.replace("+", " "))
    assert verify(TOKEN, nonce, "hi", signed)
    assert not verify(TOKEN, nonce, "hi!", signed)
    assert not verify("other-token", nonce, "hi", signed)


@given(st.text(max_size=300))
def test_encryption_round_trips(text: str) -> None:
    assert decrypt(KEY, encrypt(KEY, text)) == text


@pytest.mark.parametrize("msg", ["", "AAAA", "not base64!", CIPHERTEXT[:-4] + "AAA=",
                                 encrypt("another-16-chars", LIFE_CYCLE)])
def test_what_does_not_decrypt_says_why(msg: str) -> None:
    with pytest.raises(UndecryptableError):
        decrypt(KEY, msg)


def test_documented_envelope_and_messages_parse() -> None:
    # the push body and the property example of OneNET Studio's documentation (数据推送,
    # 消息推送; 规则引擎 消息源格式, "属性功能点上报数据")
    envelope = parse_envelope(b'{"msg": "xxxxxxxx", "nonce": "abcdefgh", '
                              b'"signature": "message signature", "time": 1591340648197, '
                              b'"id": "3799902"}')
    assert (envelope.id, envelope.nonce, envelope.time) == ("3799902", "abcdefgh",
                                                            1591340648197)
    notify = parse_message(
        '{"projectId": "990909090", "productId": "00001", "deviceName": "iot-0001", '
        '"messageType": "notify", "notifyType": "property", "imei": "509830501643080", '
        '"data": {"id": "12345", "params": {"Power": {"value": "on", "time": 1524448722123}, '
        '"WF": {"value": 23.6, "time": 1524448722123}, '
        '"3_0_20": {"time": 1612768757420, "value": 4, "bin_data": "A0AA0A0A0A0A0A0"}}}}')
    assert isinstance(notify, Notify)
    assert (notify.device.product_id, notify.device.device_name, notify.device.imei) == (
        "00001", "iot-0001", "509830501643080")
    assert notify.body["data"]["params"]["WF"]["value"] == 23.6
    offline = parse_message(LIFE_CYCLE)
    assert isinstance(offline, LifeCycle)
    assert not offline.online

"""How OneNET signs and (in secure mode) encrypts a push.

From the OneNET Studio documentation of HTTP push (数据推送, "实例验证" and "最佳实践",
https://open.iot.10086.cn/doc/iot_platform/book/application-develop/push/http_push.html):

- signature = Base64(MD5(token + nonce + msg)), the nonce being 8 characters; on the
  verification GET the signature arrives URL-encoded in the query;
- secure mode (安全模式): msg is Base64(AES-CBC(PKCS#7)) with the instance's 16-character
  key as the AES-128 key and as the IV.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

NONCE_CHARS = 8
_BLOCK_BITS = 128


class UndecryptableError(ValueError):
    """The msg of a secure-mode push is not Base64 of AES-CBC under the instance's key."""


def sign(token: str, nonce: str, msg: str) -> str:
    digest = hashlib.md5((token + nonce + msg).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def verify(token: str, nonce: str, msg: str, signature: str) -> bool:
    # a '+' of the Base64 that came unencoded in a query string was read as a space
    given = signature.replace(" ", "+").encode("utf-8", "replace")
    return hmac.compare_digest(sign(token, nonce, msg).encode(), given)


def _cipher(key: str) -> Cipher[modes.CBC]:
    raw = key.encode()
    return Cipher(algorithms.AES(raw), modes.CBC(raw))


def encrypt(key: str, plain: str) -> str:
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    data = padder.update(plain.encode()) + padder.finalize()
    encryptor = _cipher(key).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def decrypt(key: str, msg: str) -> str:
    """The plaintext of a secure-mode msg; UndecryptableError says what was wrong."""
    try:
        data = base64.b64decode(msg, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UndecryptableError(f"msg is not Base64: {exc}") from None
    if not data or len(data) % 16:
        raise UndecryptableError(f"msg decodes to {len(data)} bytes, not whole AES blocks")
    decryptor = _cipher(key).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise UndecryptableError("msg does not decrypt under the instance's aes_key "
                                 "(bad PKCS#7 padding)") from None
    try:
        return plain.decode()
    except UnicodeDecodeError:
        raise UndecryptableError("msg decrypts to bytes that are not UTF-8") from None

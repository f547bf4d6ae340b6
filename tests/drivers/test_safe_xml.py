"""Device XML: read without entities, refused where it declares any."""

from __future__ import annotations

import pytest

from drivers.safe_xml import XmlError, parse_xml

# from the hikvision_next integration's test fixtures
# (tests/fixtures/ISAPI/EventNotificationAlert/cam1_DS-2CD2346G2-ISU_io_notification.xml)
IO_ALERT = b"""<EventNotificationAlert version="2.0"
xmlns="http://www.hikvision.com/ver20/XMLSchema">
<ipAddress>192.168.1.151</ipAddress>
<portNo>443</portNo>
<protocol>HTTPS</protocol>
<channelID>1</channelID>
<dateTime>2024-11-19T16:53:28+01:00</dateTime>
<activePostCount>1</activePostCount>
<eventType>IO</eventType>
<eventState>active</eventState>
<eventDescription>IO alarm</eventDescription>
<inputIOPortID>1</inputIOPortID>
</EventNotificationAlert>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]><lolz>&lol9;</lolz>"""

EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<r>&x;</r>"""


def test_an_io_alert_reads_as_plain_values() -> None:
    root, value = parse_xml(IO_ALERT)
    assert root == "EventNotificationAlert"
    assert value["eventType"] == "IO"
    assert value["inputIOPortID"] == "1"


def test_repeated_children_become_a_list() -> None:
    _, value = parse_xml(b"<a><b>1</b><b>2</b><c><d>x</d></c></a>")
    assert value == {"b": ["1", "2"], "c": {"d": "x"}}


def test_billion_laughs_is_refused_at_its_declaration() -> None:
    # refused where the document declares its entities: none is ever expanded
    with pytest.raises(XmlError, match="document type declaration"):
        parse_xml(BILLION_LAUGHS)


@pytest.mark.parametrize("document", [EXTERNAL, b"<r>&undeclared;</r>", b"<r><x></r>", b""])
def test_entities_and_broken_documents_are_refused_with_a_reason(document: bytes) -> None:
    with pytest.raises(XmlError, match=r"refused|not well-formed"):
        parse_xml(document)

"""China Telecom CTWing (AEP): the subscription push (订阅推送) of a product's uplinks.

`message` turns a pushed JSON body into a typed uplink; `appdata` decodes the bytes of a
pass-through device with a profile's byte layout; `receiver` serves the pushes on the
gateway's HTTP push port.
"""

"""China Mobile OneNET: the HTTP push (数据推送) of a OneNET Studio push instance.

`signature` signs, verifies, encrypts and decrypts as the platform does; `message` turns a
push body into a typed uplink; `receiver` serves the verification GET and the pushes on the
gateway's HTTP push port.
"""

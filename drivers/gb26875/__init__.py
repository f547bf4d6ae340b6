"""GB/T 26875.3-2011: fire alarm control panels reporting through a user information
transmission device (用户信息传输装置) over TCP.

The codec (`frame`, `units` and the object modules) needs nothing beyond the standard
library; the TCP server is `drivers.gb26875.server.Gb26875Server`.
"""

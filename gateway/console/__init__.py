"""The duty office's console: a live alarm board served by the gateway on the compound's LAN."""

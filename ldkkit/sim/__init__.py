"""The simulated world a node lives in: the clock, the chain and the other nodes.

Nothing here has an LDK counterpart; it stands in for time, bitcoind and the network.
"""

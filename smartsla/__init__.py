"""smartsla: Service Level Agreements that enforce themselves.

Solidity contracts hold an SLA's terms and the provider's collateral; an oracle reports what it
measured; a period that misses its objective pays the customer a service credit on-chain.
"""

__version__ = "0.1.0"

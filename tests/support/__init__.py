"""What the suite's tests share, one module per concern, so that no test writes it again:

- ``chain``: deterministic keys, a genesis, signed transactions, an app driven block by block (``Chain``, or
  ``Driver`` by account name), balances, and the check that a refused transaction changed nothing;
- ``nodes``: a devnode process, a started CometBFT network, a devnode whose genesis funds named wallets;
- ``waiting``: polling with a deadline (``wait_for``, ``wait_healthy``);
- ``processes``: processes a test starts, with their logs; ``ports``: loopback ports chosen before binding;
- ``asgi``: an app served in the test's process; ``source``: what a module imports;
- ``gateway_app``, ``runtimes``: stand-ins around an in-process gateway and a provider's runtime;
- the live set-ups built on them: ``live_subnet``, ``gateway_network``, ``market_network``, ``settlement_market``,
  and ``fuzzing``'s mutated transactions.
"""

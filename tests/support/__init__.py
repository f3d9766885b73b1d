"""What the suite's tests share, one module per concern: ``chain`` (keys, a genesis, signed transactions, an app
driven block by block), ``nodes`` (devnode processes and CometBFT networks), ``waiting`` (polling until something
holds), ``processes`` (started processes and their logs), ``ports``, ``asgi`` (an app served in this process),
``source`` (what a module imports), and the live set-ups built on them: ``live_subnet``, ``gateway_network``,
``market_network``, ``settlement_market``, ``fuzzing``."""

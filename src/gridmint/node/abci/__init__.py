"""The app behind CometBFT: an ABCI 2.0 socket server and the protobuf codec it needs."""

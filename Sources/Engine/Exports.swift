/// Engine code and its users share the project RNG.
@_exported import Randomness

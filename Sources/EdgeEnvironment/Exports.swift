/// Scenario draws use the project RNG.
@_exported import Randomness

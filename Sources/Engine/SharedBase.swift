// One frozen base for many trainers: a device host runs K virtual devices on P trainers, and every trainer reads
// the same base weights. LoRA training never writes the base (backward computes only what the adapters need), so
// the weights can be shared while each trainer keeps its own adapter, optimizer state and activations.

extension LanguageModel {
    /// Another model over the same base weights (the parameter arena and any quantized matrices, shared, not copied),
    /// with no adapter and no training buffers of its own yet. Train only adapters on it: training `.base` would
    /// change the weights every sharer reads.
    public func sharingBase() -> LanguageModel {
        // The config was validated when self was made.
        try! LanguageModel(zeroed: config, quant: quant, shared: params)
    }

    /// Where the base weights live: equal for models that share one base.
    public var baseStorage: UnsafeRawPointer { UnsafeRawPointer(params.base) }
}

/// Error feedback (Seide et al. 2014; Stich et al. 2018) around any lossy codec: each device keeps a residual of what
/// its codec dropped and adds it to the next update, so nothing is lost, only delayed:
/// Σ decoded = Σ inputs − final residual.
public struct ErrorFeedback: Sendable {
    public var codec: any UpdateCodec
    public private(set) var residuals: [String: [Float]] = [:]

    public init(codec: any UpdateCodec) { self.codec = codec }

    /// Encodes values + residual(device) and keeps the new residual (input − decoded).
    public mutating func encode(_ values: [Float], layout: ParameterLayout, device: String) -> EncodedUpdate {
        var compensated = values
        if let r = residuals[device], r.count == values.count { VectorMath.axpy(1, r, &compensated) }
        let encoded = codec.encode(compensated, layout: layout)
        let sizes = layout.count == values.count ? layout : ParameterLayout.flat(values.count)
        if let decoded = try? codec.decode(encoded, layout: sizes) {
            VectorMath.axpy(-1, decoded, &compensated)
            residuals[device] = compensated
        } else {
            // Cannot happen for a codec that decodes its own output; keep nothing rather than a wrong residual.
            residuals[device] = nil
        }
        return encoded
    }

    public func residual(for device: String) -> [Float]? { residuals[device] }
    public mutating func reset(device: String) { residuals[device] = nil }
}

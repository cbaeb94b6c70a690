import Federation
import Messages

/// A device's update on its way to the wire: the experiment's codec (Federation/Compression: the one place where
/// values are rounded, quantised or dropped), with error feedback around a lossy codec (what it dropped is added to
/// the device's next update), carried as the adapter's tensors. One encoder per device: the residual is its own.
public struct UpdateEncoder: Sendable {
    /// nil: fp32, sent as it is.
    let codec: (any UpdateCodec)?
    var feedback: ErrorFeedback?

    /// `codec`: fp32 | fp16 | int8 | topk (`compression.codec`).
    public init(codec name: String, topkFraction: Double, errorFeedback: Bool = true) throws {
        if name == "fp32" { codec = nil; return }
        let c = try makeUpdateCodec(name: name, topKFraction: topkFraction)
        codec = c
        if errorFeedback { feedback = ErrorFeedback(codec: c) }
    }

    /// What the codec has dropped and not yet sent (nil: nothing held).
    public var residual: [Float]? { feedback?.residual(for: Self.key) }

    static let key = "device"

    public mutating func encode(_ delta: [Float], layout: ParameterLayout) -> [Messages.Tensor] {
        guard let codec else { return AdapterWire.tensors(delta, layout: layout) }
        let encoded = feedback != nil ? feedback!.encode(delta, layout: layout, device: Self.key) : codec.encode(delta, layout: layout)
        // Cannot fail: the codec reads what it just wrote against the same layout.
        let payload = try! codec.payload(encoded, layout: layout.count == delta.count ? layout : .flat(delta.count))
        return UpdateWire.tensors(payload, layout: layout)
    }
}

/// Updates as messages: a codec's payload as the adapter's tensors (no second rounding: f16 bits, int8 codes with the
/// codec's per-tensor scales, top-k values at their indices), and an UpdateUpload as the round engine sees it.
public enum UpdateWire {
    public static func tensors(_ payload: CodecPayload, layout: ParameterLayout) -> [Messages.Tensor] {
        switch payload {
        case .float32(let v):
            return AdapterWire.tensors(v, layout: layout)
        case .float16(let bits):
            return zip(layout.entries, layout.offsets).map { e, off in
                var bytes = [UInt8](repeating: 0, count: 2 * e.count)
                for i in 0..<e.count where off + i < bits.count {
                    bytes[2 * i] = UInt8(truncatingIfNeeded: bits[off + i]); bytes[2 * i + 1] = UInt8(truncatingIfNeeded: bits[off + i] >> 8)
                }
                return Messages.Tensor(name: e.name, shape: e.shape, dtype: .f16, bytes: bytes)
            }
        case .int8(let scales, let codes):
            return zip(layout.entries, layout.offsets).enumerated().map { t, pair in
                let (e, off) = pair
                let bytes = codes[min(off, codes.count)..<min(codes.count, off + e.count)].map { UInt8(bitPattern: $0) }
                return Messages.Tensor(name: e.name, shape: e.shape, dtype: .int8, scale: t < scales.count ? scales[t] : 0, bytes: bytes)
            }
        case .sparse(_, let indices, let values):
            var perTensor = [[(UInt32, Float)]](repeating: [], count: layout.entries.count)
            var t = 0
            for (i, v) in zip(indices, values).sorted(by: { $0.0 < $1.0 }) {
                while t + 1 < layout.offsets.count && i >= layout.offsets[t + 1] { t += 1 }
                perTensor[t].append((UInt32(i - layout.offsets[t]), v))
            }
            return layout.entries.enumerated().map { t, e in
                // No indices means dense on the wire: a tensor the codec kept nothing of carries one explicit zero.
                let kept = perTensor[t].isEmpty && e.count > 0 ? [(UInt32(0), Float(0))] : perTensor[t]
                var x = Messages.Tensor(name: e.name, shape: e.shape, floats: kept.map(\.1))
                x.indices = kept.map(\.0)
                return x
            }
        }
    }

    /// An UpdateUpload as the round engine sees it: the delta decoded in the adapter layout, or why it cannot be (a
    /// cloud's relayed device sketch is one tensor of at most the layout's size). `bytes`: its size on the wire.
    public static func upload(_ u: UpdateUpload, bytes: Int, layout: ParameterLayout, sketch: Bool) -> Upload {
        let delta: Result<[Float], RejectedUpdate>
        if sketch {
            if u.delta.count == 1, let v = try? u.delta[0].floats(), !v.isEmpty, v.count <= layout.count {
                delta = .success(v)
            } else {
                delta = .failure(RejectedUpdate(device: "", kind: "bad_sketch", reason: "a sketch is one tensor of at most \(layout.count) values"))
            }
        } else if let masked = u.privacy?.masked, !masked.isEmpty {
            // Secure aggregation: the masked words go to the group's running sum (its server checks the length).
            delta = .success([])
        } else if let problem = AdapterWire.mismatch(u.delta, layout: layout) {
            let total = u.delta.reduce(0) { $0 + ($1.elementCount ?? 0) }
            delta = .failure(RejectedUpdate(device: "", kind: total > layout.count ? "too_large" : "wrong_shape", reason: problem))
        } else {
            do { delta = .success(try AdapterWire.flat(u.delta)) } catch {
                delta = .failure(RejectedUpdate(device: "", kind: "undecodable", reason: "\(error)"))
            }
        }
        let masked = u.privacy?.masked ?? []
        return Upload(kind: sketch ? .sketch : .update, wire: u.round, cluster: Int(u.cluster), baseWire: u.baseVersion,
                      samples: Int(clamping: u.samples), loss: u.trainLoss, delta: delta, computeS: u.computeS, bytes: bytes,
                      clipReport: u.privacy?.clipReport, masked: masked.isEmpty ? nil : masked, epsilon: u.privacy?.epsilon,
                      sketch: u.privacy?.sketch.flatMap { try? $0.floats() })
    }
}

extension UpdateWire {
    /// An EvalResult as the round engine sees it.
    public static func evaluation(_ r: EvalResult) -> Evaluation {
        Evaluation(wire: r.round, domain: r.domain, loss: r.valLoss, tokens: Int(clamping: r.tokens))
    }
}

import Federation
import Messages

/// Device-side update compression (`compression.codec`): the delta goes on the wire as f32, f16, int8 (per-tensor
/// scale) or top-k sparse f32 with error feedback (what top-k leaves out is added to the next round's delta).
/// The aggregator needs no codec: `Messages.Tensor.floats()` widens and scatters every form.
public struct DeltaEncoder: Sendable {
    public let codec: String
    public let topkFraction: Double
    /// Top-k error feedback: the part of past deltas not yet sent.
    public private(set) var residual: [Float] = []

    public init(codec: String, topkFraction: Double) { self.codec = codec; self.topkFraction = topkFraction }

    public mutating func encode(_ flat: [Float], layout: Federation.ParameterLayout) -> [Messages.Tensor] {
        switch codec {
        case "fp16": return slices(flat, layout).map { Messages.Tensor(name: $0.name, shape: $0.shape, halfFrom: $0.values) }
        case "int8": return slices(flat, layout).map { Messages.Tensor(name: $0.name, shape: $0.shape, quantizing: $0.values) }
        case "topk":
            if residual.count != flat.count { residual = [Float](repeating: 0, count: flat.count) }
            for i in flat.indices { residual[i] += flat[i] }
            var out: [Messages.Tensor] = []
            for (e, off) in zip(layout.entries, layout.offsets) {
                let k = max(1, Int((topkFraction * Double(e.count)).rounded()))
                let idx = (0..<e.count).sorted { abs(residual[off + $0]) > abs(residual[off + $1]) }.prefix(k).sorted()
                let values = idx.map { residual[off + $0] }
                for i in idx { residual[off + i] = 0 }
                var t = Messages.Tensor(name: e.name, shape: e.shape, floats: values)
                t.indices = idx.map { UInt32($0) }
                out.append(t)
            }
            return out
        default: return AdapterWire.tensors(flat, layout: layout)
        }
    }

    func slices(_ flat: [Float], _ layout: Federation.ParameterLayout) -> [(name: String, shape: [Int], values: [Float])] {
        zip(layout.entries, layout.offsets).map { e, off in (e.name, e.shape, Array(flat[off..<min(flat.count, off + e.count)])) }
    }
}

import Engine
import Federation
import Foundation
import Messages

/// Adapters on the wire are named f32 tensors in the global layout's order; inside Federation they are one flat vector.
public enum AdapterWire {
    public static func layout(of adapter: LoRAAdapter) throws -> Federation.ParameterLayout {
        try Federation.ParameterLayout(adapter.tensors.map { Federation.ParameterLayout.Entry(name: $0.name, shape: $0.shape) })
    }

    public static func tensors(_ flat: [Float], layout: Federation.ParameterLayout) -> [Messages.Tensor] {
        zip(layout.entries, layout.offsets).map { e, off in
            Messages.Tensor(name: e.name, shape: e.shape, floats: Array(flat[off..<min(flat.count, off + e.count)]))
        }
    }

    /// Why tensors do not fit a layout (names, shapes); nil when they fit.
    public static func mismatch(_ tensors: [Messages.Tensor], layout: Federation.ParameterLayout) -> String? {
        guard tensors.count == layout.entries.count else {
            return "update has \(tensors.count) tensors, the adapter has \(layout.entries.count)"
        }
        for (t, e) in zip(tensors, layout.entries) where t.name != e.name || t.shape != e.shape {
            return "tensor '\(t.name)' \(t.shape) does not match '\(e.name)' \(e.shape)"
        }
        return nil
    }

    /// All tensors' values concatenated (dense, f32); throws on inconsistent payloads.
    public static func flat(_ tensors: [Messages.Tensor]) throws -> [Float] {
        if tensors.count == 1 { return try tensors[0].floats() }
        var out: [Float] = []
        out.reserveCapacity(tensors.reduce(0) { $0 + ($1.elementCount ?? 0) })
        for t in tensors { out.append(contentsOf: try t.floats()) }
        return out
    }
}

extension AdapterWire {
    /// Bytes of one model message (a ModelBroadcast of these parameters from `sender`): what a download costs.
    public static func modelMessageBytes(_ parameters: [Float], layout: Federation.ParameterLayout, sender: String) -> Int {
        Envelope(sender: sender, body: .model(ModelBroadcast(round: 1, tensors: tensors(parameters, layout: layout))))
            .encodeFrames().reduce(0) { $0 + $1.count }
    }

    /// Writes each cluster's model as a PEFT adapter folder `<directory>/clusters/cluster-<c>/` (atomically: written
    /// beside, then moved), the form stage nodes serve. Returns the clusters that could not be written, with why.
    public static func writeClusters(_ models: [Int: [Float]], template: LoRAAdapter, directory: String) -> [Int: String] {
        var failed: [Int: String] = [:]
        for (c, parameters) in models {
            var adapter = template
            do {
                try adapter.load(flat: parameters)
                let final = URL(fileURLWithPath: directory).appendingPathComponent("clusters/cluster-\(c)")
                let temp = URL(fileURLWithPath: directory).appendingPathComponent("clusters/.cluster-\(c).tmp")
                try? FileManager.default.removeItem(at: temp)
                try adapter.save(directory: temp)
                try? FileManager.default.removeItem(at: final)
                try FileManager.default.moveItem(at: temp, to: final)
            } catch {
                failed[c] = "\(error)"
            }
        }
        return failed
    }
}

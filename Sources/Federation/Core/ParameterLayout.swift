// Adapters travel as named float tensors; inside Federation they are one flat vector plus this layout.

/// Problems with a layout received from outside (a message, a checkpoint).
public enum LayoutError: Error, Equatable, Sendable, CustomStringConvertible {
    case negativeDimension(name: String, shape: [Int])
    case duplicateName(String)
    case loraShapeMismatch(prefix: String, aShape: [Int], bShape: [Int])
    case missingLoRAPartner(name: String)

    public var description: String {
        switch self {
        case let .negativeDimension(name, shape):
            return "tensor '\(name)' has a negative dimension in shape \(shape); send non-negative dimensions"
        case let .duplicateName(name):
            return "tensor name '\(name)' appears twice in the layout; each tensor must be named once"
        case let .loraShapeMismatch(prefix, a, b):
            return "LoRA pair '\(prefix)': A \(a) and B \(b) do not fit A [r, in], B [out, r]; check the adapter export"
        case let .missingLoRAPartner(name):
            return "LoRA tensor '\(name)' has no partner (lora_A needs lora_B with the same prefix); export both"
        }
    }
}

/// Names and shapes of the tensors packed, in order, into a flat parameter vector.
public struct ParameterLayout: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var count: Int { shape.reduce(1, *) }
        public init(name: String, shape: [Int]) { self.name = name; self.shape = shape }
    }

    public let entries: [Entry]
    /// Start of each entry in the flat vector.
    public let offsets: [Int]
    /// Total number of floats.
    public let count: Int

    public init(_ entries: [Entry]) throws(LayoutError) {
        var seen = Set<String>()
        var offsets: [Int] = []
        var total = 0
        for e in entries {
            if e.shape.contains(where: { $0 < 0 }) { throw .negativeDimension(name: e.name, shape: e.shape) }
            if !seen.insert(e.name).inserted { throw .duplicateName(e.name) }
            offsets.append(total)
            total += e.count
        }
        self.entries = entries
        self.offsets = offsets
        self.count = total
    }

    public init(entries: [(name: String, shape: [Int])]) throws(LayoutError) {
        try self.init(entries.map { Entry(name: $0.name, shape: $0.shape) })
    }

    /// One unnamed 1-D tensor of `count` floats (for codecs and tests without a model).
    public static func flat(_ count: Int) -> ParameterLayout {
        // Cannot fail: one name, non-negative dimension.
        (try? ParameterLayout([Entry(name: "flat", shape: [max(0, count)])]))!
    }

    public func index(of name: String) -> Int? { entries.firstIndex { $0.name == name } }

    /// Range of entry `i` in the flat vector.
    public func range(of i: Int) -> Range<Int> { offsets[i] ..< offsets[i] + entries[i].count }

    public func range(named name: String) -> Range<Int>? { index(of: name).map(range(of:)) }

    /// Element counts per entry, in order.
    public var tensorSizes: [Int] { entries.map(\.count) }
}

/// One LoRA adapter on one projection: ΔW = B·A, A [r, in], B [out, r] (PEFT names `<prefix>.lora_A.weight`).
public struct LoRAPair: Sendable, Equatable {
    /// Name up to `.lora_A` / `.lora_B`, e.g. `base_model.model.transformer.h.0.attn.c_attn`.
    public var prefix: String
    public var aIndex: Int
    public var bIndex: Int
    public var rank: Int
    public var inFeatures: Int
    public var outFeatures: Int
    public var aRange: Range<Int>
    public var bRange: Range<Int>
}

extension ParameterLayout {
    /// Finds every (lora_A, lora_B) pair by name; PEFT's optional adapter name (`lora_A.default.weight`) is kept in the match.
    public func loraPairs() throws(LayoutError) -> [LoRAPair] {
        var pairs: [LoRAPair] = []
        var byName: [String: Int] = [:]
        for (i, e) in entries.enumerated() { byName[e.name] = i }
        for (i, e) in entries.enumerated() {
            if let r = e.name.firstRange(of: ".lora_B") {
                let aName = String(e.name[..<r.lowerBound]) + ".lora_A" + String(e.name[r.upperBound...])
                if byName[aName] == nil { throw .missingLoRAPartner(name: e.name) }
                continue
            }
            guard let r = e.name.firstRange(of: ".lora_A") else { continue }
            let bName = String(e.name[..<r.lowerBound]) + ".lora_B" + String(e.name[r.upperBound...])
            guard let j = byName[bName] else { throw .missingLoRAPartner(name: e.name) }
            let a = e.shape, b = entries[j].shape
            guard a.count == 2, b.count == 2, a[0] == b[1] else {
                throw .loraShapeMismatch(prefix: String(e.name[..<r.lowerBound]), aShape: a, bShape: b)
            }
            pairs.append(LoRAPair(prefix: String(e.name[..<r.lowerBound]), aIndex: i, bIndex: j,
                                  rank: a[0], inFeatures: a[1], outFeatures: b[0],
                                  aRange: range(of: i), bRange: range(of: j)))
        }
        return pairs
    }
}

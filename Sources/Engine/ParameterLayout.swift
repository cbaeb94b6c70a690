/// Where each parameter tensor sits in the one parameter arena (llm.c order).
/// Weights are stored as [out, in] (torch Linear layout); checkpoints transpose HF's Conv1D [in, out].
public struct ParameterLayout: Sendable {
    public struct Slot: Sendable {
        public let offset: Int
        public let count: Int
    }
    public let wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb: Slot
    public let ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb: Slot
    public let count: Int

    public init(_ c: ModelConfig) {
        let V = c.vocabSize, T = c.contextLength, L = c.layers, C = c.width
        var at = 0
        func slot(_ n: Int) -> Slot { defer { at += n }; return Slot(offset: at, count: n) }
        wte = slot(V * C); wpe = slot(T * C)
        ln1w = slot(L * C); ln1b = slot(L * C)
        qkvw = slot(L * 3 * C * C); qkvb = slot(L * 3 * C)
        attprojw = slot(L * C * C); attprojb = slot(L * C)
        ln2w = slot(L * C); ln2b = slot(L * C)
        fcw = slot(L * 4 * C * C); fcb = slot(L * 4 * C)
        fcprojw = slot(L * C * 4 * C); fcprojb = slot(L * C)
        lnfw = slot(C); lnfb = slot(C)
        count = at
    }
}

/// Pointers to each parameter tensor inside an arena (parameters or their gradients).
struct ParameterTensors {
    let wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb: UnsafeMutablePointer<Float>
    let ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb: UnsafeMutablePointer<Float>

    init(base p: UnsafeMutablePointer<Float>, layout l: ParameterLayout) {
        wte = p + l.wte.offset; wpe = p + l.wpe.offset
        ln1w = p + l.ln1w.offset; ln1b = p + l.ln1b.offset
        qkvw = p + l.qkvw.offset; qkvb = p + l.qkvb.offset
        attprojw = p + l.attprojw.offset; attprojb = p + l.attprojb.offset
        ln2w = p + l.ln2w.offset; ln2b = p + l.ln2b.offset
        fcw = p + l.fcw.offset; fcb = p + l.fcb.offset
        fcprojw = p + l.fcprojw.offset; fcprojb = p + l.fcprojb.offset
        lnfw = p + l.lnfw.offset; lnfb = p + l.lnfb.offset
    }
}

/// One zeroed allocation of Floats, freed with its owner.
final class Arena {
    let base: UnsafeMutablePointer<Float>
    let count: Int
    init(count: Int) {
        self.count = count
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { base.deallocate() }
    func zero() { base.update(repeating: 0, count: count) }
    var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }
}

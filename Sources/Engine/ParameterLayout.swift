/// Where each parameter tensor sits in the one parameter arena (llm.c order). Weights are [out, in] (torch Linear
/// layout); checkpoints transpose GPT-2's Conv1D [in, out]. Both architectures use the same slots: q/k/v are one fused
/// matrix (q rows, then k, then v), and the first MLP matrix is c_fc (GPT-2) or gate and up stacked (Llama). A tensor
/// an architecture lacks (Llama's position table and norm biases, absent biases, a tied head) takes no room.
/// With `dense: false` (a quantized model) the matrices live in `QuantizedWeights` and take no room here either.
public struct ParameterLayout: Sendable {
    public struct Slot: Sendable {
        public let offset: Int
        public let count: Int
    }
    public let wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb: Slot
    public let ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb, lmHead: Slot
    public let count: Int

    public init(_ c: ModelConfig, dense: Bool = true) {
        let V = c.vocabSize, L = c.layers, C = c.width, gpt2 = c.architecture == .gpt2
        let m = dense ? 1 : 0
        var at = 0
        func slot(_ n: Int) -> Slot { defer { at += n }; return Slot(offset: at, count: n) }
        wte = slot(m * V * C); wpe = slot(gpt2 ? c.contextLength * C : 0)
        ln1w = slot(L * C); ln1b = slot(gpt2 ? L * C : 0)
        qkvw = slot(m * L * c.qkvDim * C); qkvb = slot(c.qkvBias ? L * c.qkvDim : 0)
        attprojw = slot(m * L * C * c.qDim); attprojb = slot(c.outputBias ? L * C : 0)
        ln2w = slot(L * C); ln2b = slot(gpt2 ? L * C : 0)
        fcw = slot(m * L * c.mlpInDim * C); fcb = slot(c.mlpBias ? L * c.mlpInDim : 0)
        fcprojw = slot(m * L * C * c.mlpWidth); fcprojb = slot(c.mlpBias ? L * C : 0)
        lnfw = slot(C); lnfb = slot(gpt2 ? C : 0)
        lmHead = slot(c.tiedEmbeddings ? 0 : m * V * C)
        count = at
    }

    /// Every slot in arena order (for loops over all tensors).
    var all: [Slot] { [wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb, lmHead] }
}

/// Pointers to each parameter tensor inside an arena (parameters or their gradients). Tensors an architecture or
/// config lacks are nil; in a quantized model the matrix pointers point at empty slots and are never read.
struct ParameterTensors {
    let wte, ln1w, qkvw, attprojw, ln2w, fcw, fcprojw, lnfw: UnsafeMutablePointer<Float>
    let wpe, ln1b, qkvb, attprojb, ln2b, fcb, fcprojb, lnfb, lmHead: UnsafeMutablePointer<Float>?

    init(base p: UnsafeMutablePointer<Float>, layout l: ParameterLayout) {
        func opt(_ s: ParameterLayout.Slot) -> UnsafeMutablePointer<Float>? { s.count == 0 ? nil : p + s.offset }
        wte = p + l.wte.offset; wpe = opt(l.wpe)
        ln1w = p + l.ln1w.offset; ln1b = opt(l.ln1b)
        qkvw = p + l.qkvw.offset; qkvb = opt(l.qkvb)
        attprojw = p + l.attprojw.offset; attprojb = opt(l.attprojb)
        ln2w = p + l.ln2w.offset; ln2b = opt(l.ln2b)
        fcw = p + l.fcw.offset; fcb = opt(l.fcb)
        fcprojw = p + l.fcprojw.offset; fcprojb = opt(l.fcprojb)
        lnfw = p + l.lnfw.offset; lnfb = opt(l.lnfb); lmHead = opt(l.lmHead)
    }
}

/// One zeroed allocation of Floats, freed with its owner. `lazy` arenas come from calloc, so pages that are never
/// written (the unused tail of a KV cache) never become resident.
final class Arena {
    let base: UnsafeMutablePointer<Float>
    let count: Int
    private let calloced: Bool

    init(count: Int, lazy: Bool = false) {
        self.count = count
        calloced = lazy
        if lazy {
            base = calloc(max(count, 1), MemoryLayout<Float>.stride)!.assumingMemoryBound(to: Float.self)
        } else {
            base = .allocate(capacity: max(count, 1))
            base.initialize(repeating: 0, count: max(count, 1))
        }
    }
    deinit { if calloced { free(base) } else { base.deallocate() } }
    func zero() { base.update(repeating: 0, count: count) }
    var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }
}

#if canImport(Glibc)
import Glibc
#endif

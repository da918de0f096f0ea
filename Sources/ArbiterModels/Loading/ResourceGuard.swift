// Resource guard: before a model is loaded, estimate the memory it needs and refuse with a message naming
// the size and the available memory, instead of being killed by the kernel halfway through a run.
import ArbiterFormats
import Foundation

public enum ResourceGuard {
    /// Memory available to this process: `ARBITER_MEMORY_LIMIT_BYTES` if set (tests, shared machines),
    /// else MemAvailable from /proc/meminfo (nil when unknown).
    public static func availableBytes() -> Int? {
        if let text = ProcessInfo.processInfo.environment["ARBITER_MEMORY_LIMIT_BYTES"], let v = Int(text) { return v }
        guard let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in info.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            if let kb = line.split(separator: " ").compactMap({ Int($0) }).first { return kb * 1024 }
        }
        return nil
    }

    /// Bytes a forward pass over `tokens` tokens needs besides the weights (Float32 activations: a few
    /// residual-sized tensors per layer kept by the engine, attention scores and patterns, the MLP
    /// intermediates, the logits, and the widening scratch of F16/BF16 weights).
    /// Computed in floating point (no size from a config or a prompt can overflow it), saturating at Int.max.
    public static func activationBytes(_ c: DecoderConfiguration, tokens: Int = 2048) -> Int {
        let t = Double(tokens), d = Double(c.hiddenSize), m = Double(c.intermediateSize)
        let perLayer = 8 * t * d + 3 * t * m + 2 * Double(c.attentionHeads) * t * t
        let bytes = 4 * (perLayer + t * Double(c.vocabularySize) + 256 * max(d, m))
        return bytes >= Double(Int.max) ? Int.max : Int(bytes)
    }

    /// Throws unless a run over `tokens` tokens fits: at most the model's `max_position_embeddings`, and its
    /// activations within the available memory. Called before anything of the run is allocated.
    public static func checkRun(tokens: Int, configuration c: DecoderConfiguration, model: String,
                                available: Int? = availableBytes()) throws {
        guard tokens <= c.maxPositionEmbeddings else {
            throw ModelError.invalidInput("\(model): a run of \(tokens) tokens is longer than the model's "
                                          + "max_position_embeddings (\(c.maxPositionEmbeddings), config.json)")
        }
        guard let available else { return }
        let needed = activationBytes(c, tokens: tokens)
        guard needed <= available else {
            throw ModelError.invalidInput("\(model): a run of \(tokens) tokens needs about \(gib(needed)) of "
                                          + "activations but only \(gib(available)) of memory is available")
        }
    }

    /// Throws when `weights` (stored bytes, memory-mapped and paged in as used) plus activations exceed
    /// the available memory.
    public static func check(weights: Int, configuration c: DecoderConfiguration, model: String,
                             available: Int? = availableBytes()) throws {
        guard let available else { return }
        let (needed, overflow) = weights.addingReportingOverflow(activationBytes(c))
        guard !overflow, needed <= available else {
            throw FormatError(.tooLarge, file: model,
                              "the model needs about \(gib(needed)) (\(gib(weights)) of weights + \(gib(needed - weights)) of activations for 2048 tokens) but only \(gib(available)) of memory is available")
        }
    }

    static func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
}

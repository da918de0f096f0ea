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
    public static func activationBytes(_ c: DecoderConfiguration, tokens: Int = 2048) -> Int {
        let t = tokens, d = c.hiddenSize
        let perLayer = 8 * t * d + 3 * t * c.intermediateSize + 2 * c.attentionHeads * t * t
        return 4 * (perLayer + t * c.vocabularySize + 256 * max(c.hiddenSize, c.intermediateSize))
    }

    /// Throws when `weights` (stored bytes, memory-mapped and paged in as used) plus activations exceed
    /// the available memory.
    public static func check(weights: Int, configuration c: DecoderConfiguration, model: String,
                             available: Int? = availableBytes()) throws {
        guard let available else { return }
        let needed = weights + activationBytes(c)
        guard needed <= available else {
            throw FormatError(.tooLarge, file: model,
                              "the model needs about \(gib(needed)) (\(gib(weights)) of weights + \(gib(needed - weights)) of activations for 2048 tokens) but only \(gib(available)) of memory is available")
        }
    }

    static func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
}

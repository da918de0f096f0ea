// Resource guard: before a model is loaded, estimate the memory it needs and refuse with a message naming
// the size and the available memory, instead of being killed by the kernel halfway through a run.
// Two checks: from config.json alone, before anything is read or allocated (a `num_hidden_layers` of 1e9
// would otherwise abort on allocation), and from the checkpoint's stored bytes once it is opened.
import ArbiterFormats
import Foundation

/// One part of a configuration's memory estimate, named by the config fields that size it.
public struct MemoryTerm: Sendable, Equatable {
    /// What the bytes are for, naming the config fields and their values.
    public let what: String
    /// Bytes, saturated at `Int.max`.
    public let bytes: Int

    public init(_ what: String, bytes: Int) {
        self.what = what
        self.bytes = bytes
    }

    /// Weights at the narrowest dtype Arbiter reads (F16/BF16, 2 bytes): a lower bound of what the checkpoint
    /// that matches the config will map, so the estimate never refuses a model that fits.
    public static func weights(_ what: String, count: Int) -> MemoryTerm {
        MemoryTerm(what, bytes: Checked.saturatingProduct(count, 2))
    }
}

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
    /// intermediates, the logits, and the widening scratch of F16/BF16 weights). Saturates at `Int.max`.
    public static func activationBytes(_ c: DecoderConfiguration, tokens: Int = 2048) -> Int {
        transientBytes(positions: tokens, width: c.hiddenSize, intermediate: c.intermediateSize,
                       heads: c.attentionHeads, outputs: c.vocabularySize)
    }

    /// The working set of one pre-norm transformer layer over `positions` rows, plus an output projection to
    /// `outputs` columns, in Float32 bytes (saturating).
    static func transientBytes(positions t: Int, width d: Int, intermediate: Int, heads: Int, outputs: Int) -> Int {
        typealias C = Checked
        let perLayer = C.saturatingSum(C.saturatingProduct(8, t, d), C.saturatingProduct(3, t, intermediate),
                                       C.saturatingProduct(2, heads, t, t))
        let scratch = C.saturatingProduct(256, max(d, intermediate))
        return C.saturatingProduct(4, C.saturatingSum(perLayer, C.saturatingProduct(t, outputs), scratch))
    }

    /// Throws when the configuration's own estimate (`terms`) exceeds the available memory, naming `file`,
    /// the largest term and both sizes. Call it before reading the checkpoint or building anything. An
    /// estimate past `Int.max` is refused even when the available memory is unknown.
    public static func check(configuration terms: [MemoryTerm], file: String,
                             available: Int? = availableBytes()) throws {
        let total = Checked.sum(terms.map(\.bytes)) ?? .max
        guard total == .max || available.map({ total > $0 }) == true,
              let largest = terms.max(by: { $0.bytes < $1.bytes }) else { return }
        let memory = available.map { "only \(gib($0)) of memory is available" } ?? "no machine has that much memory"
        throw FormatError(.tooLarge, file: file,
                          "the configuration needs at least \(gib(total)) before any input, \(gib(largest.bytes)) of "
                          + "it for \(largest.what), but \(memory)")
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
        let needed = Checked.saturatingSum(weights, activationBytes(c))
        guard needed <= available else {
            throw FormatError(.tooLarge, file: model,
                              "the model needs about \(gib(needed)) (\(gib(weights)) of weights + "
                              + "\(gib(needed - weights)) of activations for 2048 tokens) but only \(gib(available)) "
                              + "of memory is available")
        }
    }

    static func gib(_ bytes: Int) -> String {
        bytes == .max ? "more than 8 EiB" : String(format: "%.2f GiB", Double(bytes) / Double(1 << 30))
    }
}

extension DecoderConfiguration {
    /// The terms of the decoder's memory estimate: its weights and its activations over 2048 tokens (call
    /// after `validate`). `section` is the object holding its fields in config.json ("text_config." or "").
    public func memoryTerms(file: String, section s: String = "") throws -> [MemoryTerm] {
        let c = self
        let perLayer = try c.parametersPerLayer(file: file, section: s)
        let embeddings = Checked.saturatingProduct(c.tieWordEmbeddings ? 1 : 2, c.vocabularySize, c.hiddenSize)
        return [
            .weights("\(c.layers) decoder layers (\(s)num_hidden_layers) of \(perLayer) weights each "
                     + "(\(s)hidden_size \(c.hiddenSize), \(s)intermediate_size \(c.intermediateSize), "
                     + "\(s)num_attention_heads \(c.attentionHeads), \(s)num_key_value_heads \(c.keyValueHeads), "
                     + "\(s)head_dim \(c.headDim))",
                     count: Checked.saturatingProduct(c.layers, perLayer)),
            .weights("the token embedding and head (\(s)vocab_size \(c.vocabularySize) × "
                     + "\(s)hidden_size \(c.hiddenSize))", count: embeddings),
            MemoryTerm("activations over 2048 tokens (\(s)hidden_size, \(s)intermediate_size, "
                       + "\(s)num_attention_heads, \(s)vocab_size)", bytes: ResourceGuard.activationBytes(c)),
        ]
    }
}

// config.json decoding: both rotary key styles, defaults, and clear errors for bad values.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

@Suite("Decoder configuration")
struct ConfigurationTests {
    func decode(_ json: String) throws -> DecoderConfiguration {
        try JSONFile.decode(DecoderConfiguration.self, from: Data(json.utf8), file: "config.json")
    }

    let base = #""model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 64"#

    @Test("legacy rope_theta + rope_scaling equals rope_parameters")
    func legacyAndNewRopeKeysAgree() throws {
        let legacy = try decode("{\(base), \"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 16}}")
        let legacyType = try decode("{\(base), \"rope_theta\": 500000.0, \"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 16}}")
        let modern = try decode("{\(base), \"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 16}}")
        #expect(legacy.rope == modern.rope)
        #expect(legacyType.rope == modern.rope)
        #expect(modern.rope.type == .llama3 && modern.rope.theta == 500000 && modern.rope.originalMaxPositions == 16)
    }

    @Test("defaults: head_dim from hidden/heads, kv heads = heads, theta 10000, default rope")
    func defaults() throws {
        let c = try decode(#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 8}"#)
        #expect(c.headDim == 8 && c.keyValueHeads == 8 && c.rope.theta == 10000 && c.rope.type == .default)
        #expect(c.rope.dimension == 8 && !c.tieWordEmbeddings && !c.qkvBias)
    }

    @Test("explicit head_dim wins over hidden/heads")
    func explicitHeadDim() throws {
        let c = try decode("{\(base), \"head_dim\": 32}")
        #expect(c.headDim == 32 && c.rope.dimension == 32)
    }

    @Test("qwen2 has q/k/v bias and no o_proj bias; llama follows attention_bias")
    func biases() throws {
        let q = try decode(#"{"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4}"#)
        #expect(q.qkvBias && !q.outputBias)
        let l = try decode("{\(base), \"attention_bias\": true}")
        #expect(l.qkvBias && l.outputBias)
    }

    @Test("unsupported rope type is a clear error", arguments: ["yarn", "longrope", "su"])
    func unsupportedRope(_ type: String) throws {
        let error = #expect(throws: FormatError.self) {
            try decode("{\(base), \"rope_scaling\": {\"rope_type\": \"\(type)\", \"factor\": 2.0}}")
        }
        #expect(error?.description.contains("unsupported rope type '\(type)'") == true, "\(String(describing: error))")
        #expect(error?.description.contains("config.json") == true)
    }

    @Test("wrong types name the key path")
    func wrongType() throws {
        let error = #expect(throws: FormatError.self) { try decode(#"{"model_type": "llama", "hidden_size": "big"}"#) }
        #expect(error?.description.contains("hidden_size") == true, "\(String(describing: error))")
    }

    @Test("invalid sizes are rejected by validate", arguments: [
        (#""num_attention_heads": 6, "num_key_value_heads": 4"#, "not a multiple"),
        (#""hidden_size": -64"#, "must be positive"),
        (#""num_hidden_layers": 0"#, "num_hidden_layers must be positive"),
        (#""rms_norm_eps": 0"#, "rms_norm_eps"),
        (#""hidden_act": "swiglu2""#, "unsupported activation"),
        (#""head_dim": 7"#, "rotary dimension"),
    ])
    func invalidValues(_ fragment: String, _ phrase: String) throws {
        var json = "{\(base)}"
        // Later keys override earlier ones in JSONDecoder? No: duplicate keys are ambiguous, so replace.
        let override = try JSONSerialization.jsonObject(with: Data("{\(fragment)}".utf8)) as! [String: Any]
        var object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        for (k, v) in override { object[k] = v }
        json = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        let config = try decode(json)
        let error = #expect(throws: ModelError.self) { try config.validate(file: "config.json") }
        #expect(error?.description.contains(phrase) == true, "\(String(describing: error))")
        #expect(error?.description.contains("config.json") == true)
    }
}

@Suite("Decoder configuration ranges")
struct DecoderRangeTests {
    static let base = ConfigurationTests().base

    /// Decodes `{base, fragment}` and validates it, returning the error's description.
    static func failure(_ fragment: String) -> String {
        do {
            let config = try JSONFile.decode(DecoderConfiguration.self, from: Data("{\(base), \(fragment)}".utf8),
                                             file: "config.json")
            try config.validate(file: "config.json")
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    /// Valid llama3 rotary parameters with `key` set to `value` (or removed when nil).
    static func llama3(_ key: String = "", _ value: String? = "") -> String {
        let fields = [("rope_type", #""llama3""#), ("rope_theta", "500000.0"), ("factor", "8.0"),
                      ("low_freq_factor", "1.0"), ("high_freq_factor", "4.0"),
                      ("original_max_position_embeddings", "16")]
        let edited = fields.compactMap { field in field.0 == key ? value.map { (key, $0) } : field }
        return #""rope_parameters": {"# + edited.map { #""\#($0.0)": \#($0.1)"# }.joined(separator: ", ") + "}"
    }

    @Test("every rope type's parameters are range-checked and required, naming the key path", arguments: [
        (llama3("low_freq_factor", "0"), "field rope_parameters.low_freq_factor: must be positive"),
        (llama3("original_max_position_embeddings", "0"),
         "field rope_parameters.original_max_position_embeddings: must be positive, found 0"),
        (llama3("original_max_position_embeddings", "-5"),
         "field rope_parameters.original_max_position_embeddings: must be positive, found -5"),
        (llama3("high_freq_factor", "0.5"), "field rope_parameters.high_freq_factor: must be finite and above "
            + "low_freq_factor"),
        (llama3("factor", "0"), "field rope_parameters.factor: must be positive"),
        (llama3("low_freq_factor", nil), "field rope_parameters.low_freq_factor: is required for rope_type 'llama3'"),
        (#""rope_scaling": {"type": "linear"}"#, "field rope_scaling.factor: is required for rope_type 'linear'"),
        (#""rope_scaling": {"type": "linear", "factor": -1}"#, "field rope_scaling.factor: must be positive"),
        (#""rope_scaling": {"rope_type": "dynamic", "factor": 0}"#, "field rope_scaling.factor: must be positive"),
        (#""rope_theta": 0"#, "field rope_theta: must be positive"),
        (#""rope_parameters": {"rope_type": "default", "rope_theta": -1}"#,
         "field rope_parameters.rope_theta: must be positive"),
        (#""partial_rotary_factor": 1.5"#, "field partial_rotary_factor: must be in (0, 1], found 1.5"),
        (#""rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0}"#,
         "field rope_parameters.partial_rotary_factor: must be in (0, 1]"),
    ])
    func ropeParameters(_ fragment: String, _ phrase: String) {
        let text = Self.failure(fragment)
        #expect(text.contains(phrase) && text.hasPrefix("config.json"), "\(text)")
    }

    @Test("the llama3 base configuration above is valid, so each failure is due to its one change")
    func llama3BaseIsValid() throws {
        #expect(Self.failure(Self.llama3()) == "no error")
        #expect(Self.failure(#""rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}"#) == "no error")
    }

    @Test("mrope_section: negative entries (also on a text model), a sum that wraps around, other than 3 entries",
          arguments: [
        (#""rope_scaling": {"type": "mrope", "mrope_section": [-2, 6, 4]}"#, "entries must not be negative, found -2"),
        (#""rope_scaling": {"type": "mrope", "mrope_section": [9223372036854775807, 9223372036854775807, 10]}"#,
         "sums to more than 9223372036854775807"),
        (#""rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 2, 1]}"#, "must have 3 entries"),
        (#""rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 4]}"#,
         "sums to 9, want half the rotary dimension 8"),
    ])
    func mropeSection(_ fragment: String, _ phrase: String) {
        let text = Self.failure(fragment)
        #expect(text.contains("field rope_scaling.mrope_section: ") && text.contains(phrase), "\(text)")
        #expect(text.hasPrefix("config.json"))
    }

    @Test("sizes: every one positive, products computed with overflow checks naming the fields", arguments: [
        (#""max_position_embeddings": 0"#, "max_position_embeddings must be positive, got 0"),
        (#""rms_norm_eps": 1e300"#, "rms_norm_eps must be positive and finite"),
        (#""vocab_size": 4611686018427387904"#, "vocab_size × hidden_size overflows"),
        (#""intermediate_size": 4611686018427387904"#, "3 × hidden_size × intermediate_size overflows"),
        (#""head_dim": 4611686018427387904"#, "2 × hidden_size × num_attention_heads × head_dim overflows"),
        (#""num_hidden_layers": 4611686018427387904"#, "num_hidden_layers × weights per layer overflows"),
    ])
    func sizes(_ fragment: String, _ phrase: String) {
        // Each fragment's key also appears in `base`: decode the base with that key removed.
        let key = String(fragment.split(separator: "\"")[0])
        let base = Self.base.split(separator: ",").filter { !$0.contains("\"\(key)\"") }.joined(separator: ",")
        let text: String
        do {
            let config = try JSONFile.decode(DecoderConfiguration.self, from: Data("{\(base), \(fragment)}".utf8),
                                             file: "config.json")
            try config.validate(file: "config.json")
            text = "no error"
        } catch { text = "\(error)" }
        #expect(text.contains(phrase) && text.hasPrefix("config.json"), "\(text)")
    }

    @Test("a text_config's fields are named with their section")
    func sectionNamed() throws {
        let config = DecoderConfiguration(vocabularySize: 10, hiddenSize: 8, intermediateSize: 0, layers: 1,
                                          attentionHeads: 2)
        let error = #expect(throws: ModelError.self) {
            try config.validate(file: "config.json", section: "text_config.")
        }
        #expect(error?.description == "config.json: invalid configuration: text_config.intermediate_size must be "
                + "positive, got 0", "\(String(describing: error))")
    }
}

@Suite("Config numbers")
struct ConfigNumberTests {
    @Test("integer fields written as non-integers are named with the file, not reported as invalid JSON",
          arguments: [
        ("tiny-llama", ["num_hidden_layers"], "2.5", "field num_hidden_layers must be an integer, found 2.5"),
        ("tiny-llama", ["num_hidden_layers"], "3.0", "field num_hidden_layers must be an integer, found 3.0"),
        ("tiny-llama", ["vocab_size"], "1e9", "field vocab_size must be an integer, found 1000000000.0"),
        ("tiny-llama", ["num_attention_heads"], "99999999999999999999",
         "field num_attention_heads must be an integer, found 1e+20"),
        ("tiny-llama", ["rope_parameters", "original_max_position_embeddings"], "16.0",
         "field rope_parameters.original_max_position_embeddings must be an integer, found 16.0"),
        ("tiny-llava", ["vision_config", "num_hidden_layers"], "1e9",
         "field vision_config.num_hidden_layers must be an integer, found 1000000000.0"),
        ("tiny-llava", ["text_config", "hidden_size"], "\"64\"",
         "field text_config.hidden_size must be an integer, found a string"),
        ("tiny-llava", ["text_config", "rms_norm_eps"], "\"small\"",
         "field text_config.rms_norm_eps must be a number, found a string"),
        ("tiny-llava", ["text_config", "rms_norm_eps"], "1e400",
         "field text_config.rms_norm_eps must be a finite number, found one beyond the 64-bit float range"),
        ("tiny-qwen2-vl", ["vision_config", "depth"], "2.5", "field vision_config.depth must be an integer, found 2.5"),
        ("tiny-qwen2-vl", ["image_token_id"], "305.0", "field image_token_id must be an integer, found 305.0"),
    ])
    func nonIntegers(_ model: String, _ path: [String], _ literal: String, _ phrase: String) throws {
        let error = try loadError(model, editing: path, to: literal) as? FormatError
        #expect(error?.file.hasSuffix("/config.json") == true && error?.kind == .malformed)
        #expect(error?.problem == phrase, "\(String(describing: error))")
    }

    @Test("a duplicate key is refused, naming the key and the object holding it")
    func duplicateKey() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llava")
        try editConfig(folder, path: ["text_config", "num_hidden_layers"], literal: #"2, "num_hidden_layers": 3"#)
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        #expect(error?.description.contains(#"duplicate key "num_hidden_layers" in "text_config""#) == true,
                "\(String(describing: error))")
    }
}

@Suite("Vision tower configuration")
struct VisionConfigurationTests {
    @Test("CLIP vision_config fields are range-checked with overflow checks, naming config.json and the field",
          arguments: [
        ("layer_norm_eps", "0", "invalid configuration: vision_config.layer_norm_eps must be positive and finite"),
        ("image_size", "1099511627776", "(vision_config.image_size / patch_size)² overflows"),
        ("hidden_size", "2147483648", "4 × vision_config.hidden_size² overflows"),
        ("num_channels", "-3", "vision_config.num_channels must be positive, got -3"),
    ])
    func clipRanges(_ key: String, _ literal: String, _ phrase: String) throws {
        let error = try loadError("tiny-llava", editing: ["vision_config", key], to: literal)
        let text = (error as? ModelError)?.description ?? "not a ModelError: \(String(describing: error))"
        #expect(text.contains("/config.json: ") && text.contains(phrase), "\(text)")
    }

    @Test("a vision tower too large for memory is refused from config.json before anything is allocated",
          arguments: [
        (["vision_config", "num_hidden_layers"], "1000000000",
         "1000000000 vision layers (vision_config.num_hidden_layers)"),
        (["vision_config", "image_size"], "65536", "vision activations (vision_config.image_size 65536 / patch_size"),
        (["vision_config", "intermediate_size"], "1000000000000", "intermediate_size 1000000000000"),
        (["text_config", "num_hidden_layers"], "1000000000",
         "1000000000 decoder layers (text_config.num_hidden_layers)"),
    ])
    func tooLarge(_ path: [String], _ literal: String, _ phrase: String) throws {
        let error = try loadError("tiny-llava", editing: path, to: literal) as? FormatError
        #expect(error?.kind == .tooLarge && error?.file.hasSuffix("/config.json") == true)
        let text = error?.problem ?? ""
        #expect(text.contains(phrase) && text.contains("of memory is available"), "\(text)")
    }

    @Test("text_config fields of a LLaVA config are named with their section")
    func textSection() throws {
        let error = try loadError("tiny-llava", editing: ["text_config", "max_position_embeddings"], to: "-1")
        #expect((error as? ModelError)?.description.contains("text_config.max_position_embeddings must be positive, got -1") == true,
                "\(String(describing: error))")
    }
}

@Suite("Model loading")
struct ModelLoadingTests {
    @Test("a named pipe as config.json, model.safetensors or tokenizer.json is refused without blocking",
          arguments: ["config.json", "model.safetensors", "tokenizer.json"])
    func namedPipes(_ name: String) throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llava")
        let pipe = folder.appendingPathComponent(name)
        try FileManager.default.removeItem(at: pipe)
        try #require(mkfifo(pipe.path, 0o600) == 0)
        // Should the check regress, a writer opened after 10 s releases the blocked read, which then fails
        // with another message (or loads nothing), so the test fails instead of hanging.
        let release = DispatchWorkItem { let fd = open(pipe.path, O_WRONLY | O_NONBLOCK); if fd >= 0 { close(fd) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 10, execute: release)
        defer { release.cancel() }
        let error = #expect(throws: FormatError.self) { try ModelSession(directory: folder) }
        #expect(error?.description.contains("\(pipe.path): unreadable: not a regular file: it is a named pipe (FIFO)")
                == true, "\(String(describing: error))")
    }

    @Test("unknown model_type names the type and the supported ones")
    func unknownModelType() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llama")
        try editConfig(folder) { $0["model_type"] = "mamba" }
        let error = #expect(throws: ModelError.self) { try ModelRegistry.load(folder) }
        let text = error?.description ?? ""
        #expect(text.contains("'mamba'") && text.contains("llama") && text.contains("config.json"), "\(text)")
    }

    @Test("malformed config.json names the file")
    func malformedConfig() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llama")
        try Data("{\"model_type\": \"llama\", ".utf8).write(to: folder.appendingPathComponent("config.json"))
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        #expect(error?.file.hasSuffix("config.json") == true && error?.kind == .malformed)
    }

    @Test("missing model folder and missing config are clear errors")
    func missingFiles() throws {
        let tmp = try TemporaryFolder()
        #expect(throws: FormatError.self) { try ModelRegistry.load(tmp.url.appendingPathComponent("nope")) }
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(tmp.url) }
        #expect(error?.description.contains("config.json") == true)
    }

    @Test("a missing tensor is named")
    func missingTensor() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llama")
        var tensors = try floatTensors(of: folder)
        tensors["model.layers.1.mlp.up_proj.weight"] = nil
        try SafetensorsWriter.write(floats: tensors, dtype: .float32, to: folder.appendingPathComponent("model.safetensors"))
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        #expect(error?.kind == .missing && error?.description.contains("model.layers.1.mlp.up_proj.weight") == true,
                "\(String(describing: error))")
    }

    @Test("an unexpected tensor is listed")
    func extraTensor() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llama")
        var tensors = try floatTensors(of: folder)
        tensors["model.layers.9.mystery.weight"] = Tensor(zeros: [2, 2])
        try SafetensorsWriter.write(floats: tensors, dtype: .float32, to: folder.appendingPathComponent("model.safetensors"))
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        #expect(error?.kind == .unexpected && error?.description.contains("model.layers.9.mystery.weight") == true)
    }

    @Test("a shape that disagrees with the config names tensor and both shapes")
    func wrongShape() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llama")
        try editConfig(folder) { $0["intermediate_size"] = 96 }
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        #expect(error?.kind == .inconsistent && error?.description.contains("gate_proj") == true && error?.description.contains("96") == true,
                "\(String(describing: error))")
    }

    @Test("untied model without lm_head fails; tied model without lm_head loads")
    func lmHeadTying() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llama")
        var tensors = try floatTensors(of: folder)
        tensors["lm_head.weight"] = nil
        try SafetensorsWriter.write(floats: tensors, dtype: .float32, to: folder.appendingPathComponent("model.safetensors"))
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        #expect(error?.description.contains("lm_head.weight") == true)
        try editConfig(folder) { $0["tie_word_embeddings"] = true }
        let model = try ModelRegistry.load(folder)
        #expect(model.decoder.unembedding.name == "model.embed_tokens.weight")
    }

    @Test("legacy rotary keys give the same logits as rope_parameters")
    func legacyConfigSameLogits() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llama")
        try editConfig(folder) { object in
            var rope = object.removeValue(forKey: "rope_parameters") as! [String: Any]
            object["rope_theta"] = rope.removeValue(forKey: "rope_theta")
            rope["type"] = rope.removeValue(forKey: "rope_type")
            object["rope_scaling"] = rope
        }
        let ids = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43, 38, 32, 79, 50, 28, 8, 41]
        // OpenBLAS's last bits depend on its (process-wide) thread count, which analyses running in parallel
        // tests lower to 1: pin it for the pair of runs.
        let (a, b) = try BLAS.withSingleThread {
            (try ModelRegistry.load(folder).decoder.forward(ids: ids).logits!, try ModelRegistry.load(Repository.model("tiny-llama")).decoder.forward(ids: ids).logits!)
        }
        #expect(a == b)
    }

    @Test("sharded checkpoint gives bit-identical logits")
    func shardedCheckpoint() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-qwen2")
        let tensors = try floatTensors(of: folder)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model.safetensors"))
        let names = tensors.keys.sorted()
        let halves = [Array(names.prefix(names.count / 2)), Array(names.dropFirst(names.count / 2))]
        var weightMap: [String: String] = [:]
        for (i, part) in halves.enumerated() {
            let file = "model-0000\(i + 1)-of-00002.safetensors"
            try SafetensorsWriter.write(floats: tensors.filter { part.contains($0.key) }, dtype: .float32,
                                        to: folder.appendingPathComponent(file))
            for n in part { weightMap[n] = file }
        }
        let index: [String: Any] = ["metadata": ["total_size": 0], "weight_map": weightMap]
        try JSONSerialization.data(withJSONObject: index).write(to: folder.appendingPathComponent("model.safetensors.index.json"))
        let ids = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 200, 300, 400]
        // OpenBLAS's last bits depend on its (process-wide) thread count: pin it for the pair of runs.
        let (a, b) = try BLAS.withSingleThread {
            (try ModelRegistry.load(folder).decoder.forward(ids: ids).logits!, try ModelRegistry.load(Repository.model("tiny-qwen2")).decoder.forward(ids: ids).logits!)
        }
        #expect(a == b)
    }

    @Test("bf16 and f16 checkpoints equal an f32 checkpoint holding the same rounded values",
          arguments: [DType.bfloat16, DType.float16])
    func halfPrecisionCheckpoint(_ dtype: DType) throws {
        let tmp = try TemporaryFolder()
        let half = try tmp.copyModel("tiny-llama", as: "half")
        let rounded = try tmp.copyModel("tiny-llama", as: "rounded")
        let tensors = try floatTensors(of: half)
        try SafetensorsWriter.write(floats: tensors, dtype: dtype, to: half.appendingPathComponent("model.safetensors"))
        // The same values widened back to f32, stored as f32.
        let widened = try floatTensors(of: half)
        try SafetensorsWriter.write(floats: widened, dtype: .float32, to: rounded.appendingPathComponent("model.safetensors"))
        let ids = Array(0..<30).map { ($0 * 37 + 11) % 512 }
        // The BLAS thread count is process-wide (analysis tests lower it): pin it for the pair of runs.
        let (a, b) = try BLAS.withSingleThread {
            (try ModelRegistry.load(half).decoder.forward(ids: ids).logits!, try ModelRegistry.load(rounded).decoder.forward(ids: ids).logits!)
        }
        // Same values; only the GEMM path differs (blocked widening vs zero-copy), so sums may be
        // grouped differently: float32 noise only.
        let report = compare(a, to: b, tolerance: Tolerance(atol: 1e-5, rtol: 1e-6, nmse: 1e-12,
                                                            reason: "same weights, different GEMM blocking"), label: "\(dtype)")
        #expect(report.passed, "\(report)")
    }

    @Test("token ids outside the vocabulary are rejected before computing")
    func idsOutOfRange() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-llama"))
        let error = #expect(throws: ModelError.self) { try model.decoder.forward(ids: [1, 2, 512]) }
        #expect(error?.description.contains("512") == true)
        #expect(throws: ModelError.self) { try model.decoder.forward(ids: [-1]) }
    }
}

@Suite("Numerical guards")
struct NumericalGuardTests {
    @Test("a NaN or infinite weight is refused at load time, naming the file, the tensor and the element", arguments: [
        "model.layers.1.self_attn.q_proj.weight", "model.layers.2.mlp.down_proj.weight",
        "model.layers.0.mlp.up_proj.weight", "model.norm.weight", "lm_head.weight", "model.embed_tokens.weight",
    ])
    func nanWeight(_ tensorName: String) throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llama")
        var tensors = try floatTensors(of: folder)
        var t = try #require(tensors[tensorName])
        let position = t.rank == 1 ? 1 : t.columns + 1  // index [1] or [1, 1]
        t.scalars[position] = .nan
        t.scalars[position + 1] = .infinity  // later: not the one reported
        tensors[tensorName] = t
        let file = folder.appendingPathComponent("model.safetensors")
        try SafetensorsWriter.write(floats: tensors, dtype: .float32, to: file)
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        let index = t.rank == 1 ? "[1]" : "[1, 1]"
        let text = error?.description ?? "no error"
        #expect(text.contains(file.path), "\(text)")
        #expect(text.contains("tensor \"\(tensorName)\" holds NaN at element \(position) (index \(index)"), "\(text)")
    }

    @Test("a non-finite activation from finite weights is reported at the first hook where it shows", arguments: [
        ("model.layers.1.input_layernorm.weight", "blocks.1.ln1.hook_normalized"),
        ("model.layers.2.post_attention_layernorm.weight", "blocks.2.ln2.hook_normalized"),
        ("model.norm.weight", "ln_final.hook_normalized"),
    ])
    func overflowingWeight(_ tensorName: String, _ hook: String) throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llama")
        var tensors = try floatTensors(of: folder)
        var t = try #require(tensors[tensorName])
        // The largest finite gain: any normalized element above 1 in magnitude overflows to infinity.
        t.scalars = Array(repeating: .greatestFiniteMagnitude, count: t.count)
        tensors[tensorName] = t
        try SafetensorsWriter.write(floats: tensors, dtype: .float32, to: folder.appendingPathComponent("model.safetensors"))
        let model = try ModelRegistry.load(folder)
        let error = #expect(throws: ModelError.self) { try model.decoder.forward(ids: [1, 5, 9, 13]) }
        guard case .nonFinite(let name, _, let position, _)? = error else {
            Issue.record("expected a non-finite error, got \(String(describing: error))"); return
        }
        #expect(name == hook, "\(String(describing: error))")
        #expect((0..<4).contains(position))
    }
}

@Suite("Resource guard")
struct ResourceGuardTests {
    @Test("a model larger than the available memory is refused with both sizes named")
    func refusesTooLarge() throws {
        let config = DecoderConfiguration(vocabularySize: 32000, hiddenSize: 4096, intermediateSize: 11008, layers: 32, attentionHeads: 32)
        // The limit is passed, not set through ARBITER_MEMORY_LIMIT_BYTES: the environment is process-wide, and
        // every model loaded by a test running alongside would be refused too.
        let limited = #expect(throws: FormatError.self) {
            try ResourceGuard.check(weights: 2 << 20, configuration: config, model: "llava-1.5-7b", available: 1 << 20)
        }
        #expect(limited?.kind == .tooLarge && limited?.description.contains("0.00 GiB of memory is available") == true,
                "\(String(describing: limited))")
    }

    @Test("the configuration estimate names the largest term, the file and both sizes")
    func configurationEstimate() throws {
        let terms = [MemoryTerm("small part", bytes: 1 << 20),
                     MemoryTerm.weights("the big part (some_field 7)", count: 3 << 30)]
        let error = #expect(throws: FormatError.self) {
            try ResourceGuard.check(configuration: terms, file: "m/config.json", available: 4 << 30)
        }
        #expect(error?.kind == .tooLarge && error?.file == "m/config.json")
        #expect(error?.problem == "the configuration needs at least 6.00 GiB before any input, 6.00 GiB of it for the "
                + "big part (some_field 7), but only 4.00 GiB of memory is available", "\(String(describing: error))")
        try ResourceGuard.check(configuration: terms, file: "m/config.json", available: 7 << 30)
        try ResourceGuard.check(configuration: terms, file: "m/config.json", available: nil)
        // An estimate past Int.max is refused even when the machine's memory is unknown.
        let huge = [MemoryTerm.weights("everything", count: .max), MemoryTerm("more", bytes: 1)]
        let saturated = #expect(throws: FormatError.self) {
            try ResourceGuard.check(configuration: huge, file: "m/config.json", available: nil)
        }
        #expect(saturated?.problem.contains("more than 8 EiB") == true, "\(String(describing: saturated))")
    }

    @Test("every bundled model's configuration estimate fits in 1 GiB")
    func bundledEstimates() throws {
        for id in ["tiny-llama", "tiny-qwen2", "tiny-llava", "arbiter-main", "tiny-qwen2-vl", "tiny-qwen2_5-vl",
                   "tiny-internvl", "tiny-internvl-rms"] {
            let directory = try ModelDirectory(Repository.model(id))
            let file = directory.configURL.path
            let terms: [MemoryTerm] = switch directory.modelType {
            case "llava": try directory.configuration(LlavaConfiguration.self).memoryTerms(file: file)
            case "qwen2_vl", "qwen2_5_vl": try directory.configuration(QwenVLConfiguration.self).memoryTerms(file: file)
            case "internvl": try directory.configuration(InternVLConfiguration.self).memoryTerms(file: file)
            default: try directory.configuration(DecoderConfiguration.self).memoryTerms(file: file)
            }
            try ResourceGuard.check(configuration: terms, file: file, available: 1 << 30)
        }
    }

    @Test("the activation estimate grows with tokens and stays small for tiny models")
    func estimate() throws {
        let tiny = try ModelRegistry.load(Repository.model("tiny-llama")).decoder.configuration
        #expect(ResourceGuard.activationBytes(tiny, tokens: 64) < ResourceGuard.activationBytes(tiny, tokens: 128))
        // 2048 tokens: attention scores and patterns dominate (2 · 4 heads · 2048² floats ≈ 134 MB).
        #expect(ResourceGuard.activationBytes(tiny) < 256 << 20)
    }
}

// config.json cases: every size, real and token-id field of the three bases given zero, negative, fractional,
// string, huge and missing values; activations, model types, rope variants and their parameters,
// mrope_section, the LLaVA vision-feature fields, whole-file damage.
import Foundation

extension FuzzCatalog {
    /// What a field holds, which decides what each mutation of it should give.
    enum FieldRole {
        /// A positive integer size that the weights pin (any other value must be refused).
        case size
        /// A positive integer the weights do not pin (max_position_embeddings, image_size): other valid values
        /// may give the same answer.
        case bound
        /// A positive real (epsilons, rope_theta).
        case real
        /// A token id the prompt relies on.
        case token
        /// A field the forward pass does not read: any value gives the same answer or a refusal.
        case ignored
    }

    static func configFields(_ base: String) -> [(String, FieldRole)] {
        let text: [(String, FieldRole)] = [
            ("hidden_size", .size), ("intermediate_size", .size), ("num_attention_heads", .size),
            ("num_hidden_layers", .size), ("num_key_value_heads", .size), ("vocab_size", .size),
            ("max_position_embeddings", .bound), ("rms_norm_eps", .real), ("rope_parameters.rope_theta", .real),
            ("bos_token_id", .ignored), ("initializer_range", .ignored), ("attention_dropout", .ignored),
        ]
        switch base {
        case "llama":
            return text + [("head_dim", .size), ("pretraining_tp", .ignored)]
        case "llava":
            return text.map { ("text_config." + $0.0, $0.1) } + [
                ("vision_config.hidden_size", .size), ("vision_config.intermediate_size", .size),
                ("vision_config.num_attention_heads", .size), ("vision_config.num_hidden_layers", .size),
                ("vision_config.patch_size", .size), ("vision_config.num_channels", .size),
                ("vision_config.image_size", .bound), ("vision_config.layer_norm_eps", .real),
                ("vision_config.projection_dim", .ignored), ("image_token_index", .token),
                ("image_seq_length", .ignored),
            ]
        default:
            return text.map { ("text_config." + $0.0, $0.1) } + [
                ("vision_config.depth", .size), ("vision_config.embed_dim", .size),
                ("vision_config.hidden_size", .size),
                ("vision_config.mlp_ratio", .size), ("vision_config.num_heads", .size),
                ("vision_config.patch_size", .size), ("vision_config.spatial_merge_size", .size),
                ("vision_config.temporal_patch_size", .size), ("vision_config.in_channels", .size),
                ("image_token_id", .token), ("vision_start_token_id", .token), ("video_token_id", .ignored),
            ]
        }
    }

    static func config() -> [FuzzCase] {
        var list = CaseList(.config, "config")
        let file = "model/config.json"
        for base in [FuzzBases.llama, FuzzBases.llava, FuzzBases.qwen] {
            let original = try! FuzzJSON.read(
                Repository.root
                    .appendingPathComponent("\(FuzzBases.models)/\(modelFolder(base))/config.json"))
            func set(_ name: String, _ path: String, _ value: FuzzJSON?, _ e: Expectation) {
                list.file(base, name, e) { ws in try ws.editJSON(file) { $0.setting(path, value) } }
            }
            func edit(_ name: String, _ e: Expectation, _ change: @escaping @Sendable (FuzzJSON) -> FuzzJSON) {
                list.file(base, name, e) { ws in try ws.editJSON(file, change) }
            }
            var rng = FuzzRandom("config/\(base.id)")
            for (path, role) in configFields(base.id) {
                guard let current = original[path] else { continue }
                let leaf = String(path.split(separator: ".").last!)
                // Reals may be named in words ("rope theta").
                let field = role == .real ? "\(leaf)|\(leaf.replacingOccurrences(of: "_", with: " "))" : leaf
                let refuse = Expectation.refuse("config.json", field)
                let orSame = Expectation.refuseOrSame("config.json", field)
                // A size the weights pin may be reported as the disagreement with a tensor, in the model folder.
                let pinned = Expectation.refuse("config.json|in/model", "\(field)|tensor \"|never used")
                let pinnedOrSame = Expectation.refuseOrSame("config.json|in/model", "\(field)|tensor \"|never used")
                let orAny = Expectation.refuseOrSucceed("config.json", field)
                let value = current.integer ?? 0
                var mutations: [(String, FuzzJSON?, Expectation)]
                switch role {
                case .size, .bound:
                    let changed: Expectation = role == .size ? pinned : pinnedOrSame
                    // mlp_ratio is a float in transformers: 2.5 is a valid value the weights then disagree with.
                    let fraction = leaf == "mlp_ratio" ? pinned : refuse
                    mutations = [
                        ("0", .number(0), refuse), ("-1", .number(-1), refuse),
                        ("fraction", .raw("\(value).5"), fraction),
                        ("string", .string("\(value)"), refuse), ("1e9", .number(1_000_000_000), changed),
                        ("int64-max", .raw("9223372036854775807"), changed),
                        ("beyond-int64", .raw("9223372036854775808"), refuse),
                        ("float-form", .raw("\(value).0"), orSame), ("null", .null, pinnedOrSame),
                        ("true", .bool(true), refuse),
                        ("plus-1", .number(value + 1), changed), ("minus-1", .number(value - 1), changed),
                        ("missing", nil, pinnedOrSame),
                    ]
                    if path.hasSuffix("max_position_embeddings") { mutations.append(("4", .number(4), refuse)) }
                case .real:
                    let refuse = Expectation.refuse(
                        "config.json", "\(field)|\(field.replacingOccurrences(of: "_", with: " "))")
                    mutations = [
                        ("0", .number(0), orAny), ("negative", .number(-1e-5), refuse),
                        ("string", .string("1e-5"), refuse),
                        ("1e400", .raw("1e400"), refuse), ("NaN", .raw("NaN"), refuse), ("1e30", .raw("1e30"), orAny),
                        ("null", .null, orAny), ("missing", nil, orAny),
                    ]
                case .token:
                    mutations = [
                        ("-1", .number(-1), refuse), ("vocab-size", .number(100_000), refuse),
                        ("fraction", .raw("\(value).5"), refuse),
                        ("string", .string("\(value)"), refuse), ("int64-max", .raw("9223372036854775807"), refuse),
                        ("other-id", .number(5), orAny), ("missing", nil, orAny),
                    ]
                case .ignored:
                    mutations = [
                        ("-1", .number(-1), orSame), ("string", .string("x"), orSame), ("null", .null, orSame),
                    ]
                }
                // The text tower's fields are shared by the three bases: the VLMs get a seeded third of them.
                if base.id != "llama" && path.hasPrefix("text_config.") {
                    mutations = mutations.filter { _ in rng.int(0..<3) == 0 }
                }
                for (label, v, e) in mutations { set("\(path)=\(label)", path, v, e) }
            }

            let text = base.id == "llama" ? "" : "text_config."
            let vision = base.id == "llama" ? nil : "vision_config."
            // Activations and model types.
            set(
                "\(text)hidden_act=unknown", "\(text)hidden_act", .string("swish-9"),
                .refuse("config.json", "hidden_act"))
            set(
                "\(text)hidden_act=gelu", "\(text)hidden_act", .string("gelu"),
                .refuseOrSucceed("config.json", "hidden_act"))
            set("\(text)hidden_act=number", "\(text)hidden_act", .number(3), .refuse("config.json", "hidden_act"))
            if let vision {
                set(
                    "\(vision)hidden_act=unknown", "\(vision)hidden_act", .string("swish-9"),
                    .refuse("config.json", "hidden_act"))
                set("vision_config=missing", "vision_config", nil, .refuse("config.json", "vision_config"))
                set("vision_config=array", "vision_config", .array([]), .refuse("config.json", "vision_config"))
                set("text_config=missing", "text_config", nil, .refuseOrSame("config.json"))
                set("text_config=string", "text_config", .string("llama"), .refuse("config.json", "text_config"))
                set(
                    "text_config.model_type=unknown", "text_config.model_type", .string("mamba"),
                    .refuse("config.json", "model_type"))
                set(
                    "vision_config.model_type=unknown", "vision_config.model_type", .string("siglip_vision_model"),
                    .refuse("config.json", "model_type"))
            }
            set("model_type=unknown", "model_type", .string("gpt_neox"), .refuse("config.json", "model_type"))
            set(
                "model_type=other-family", "model_type", .string(base.id == "qwen2vl" ? "llava" : "qwen2_vl"),
                .refuse("config.json"))
            set("model_type=missing", "model_type", nil, .refuse("config.json", "model_type"))
            set("model_type=number", "model_type", .number(1), .refuse("config.json", "model_type"))
            set("architectures=missing", "architectures", nil, .refuseOrSame("config.json"))
            set("dtype=bfloat16", "dtype", .string("bfloat16"), .refuseOrSucceed("config.json", "dtype"))
            set("dtype=unknown", "dtype", .string("float7"), .refuseOrSame("config.json", "dtype"))
            set(
                "\(text)tie_word_embeddings=string", "\(text)tie_word_embeddings", .string("yes"),
                .refuse("config.json", "tie_word_embeddings"))
            if base.id != "qwen2vl" {
                // Qwen2 has q/k/v biases whatever these say; Llama reads them.
                for key in ["attention_bias", "mlp_bias"] {
                    set(
                        "\(text)\(key)=true", "\(text)\(key)", .bool(true),
                        .refuse("config.json|in/model", "\(key)|tensor \""))
                }
            }
            set("extra-unknown-field", "arbiter_fuzz_extra", .string("value"), .same)
            set(
                "huge-ignored-string", "arbiter_fuzz_note", .string(String(repeating: "x", count: 1 << 20)),
                .refuseOrSame("config.json"))

            // Rope: the parameters of each variant.
            let rope = "\(text)rope_parameters"
            // Qwen2-VL keeps its mrope_section in every variant.
            let keep = base.id == "qwen2vl" ? [("mrope_section", original["\(rope).mrope_section"]!)] : []
            func ropeCase(_ name: String, _ params: [(String, FuzzJSON)], _ e: Expectation) {
                var e = e
                // The parameter, or the rope_parameters object holding it, named.
                e.naming = e.naming.map { $0 == "config.json" ? $0 : "\($0)|rope_parameters" }
                var merged: [(String, FuzzJSON)] = [("rope_theta", .raw("10000.0"))] + keep
                for (k, v) in params {
                    merged.removeAll { $0.0 == k }
                    merged.append((k, v))
                }
                set("rope=\(name)", rope, .object(merged), e)
            }
            let ropeAny = Expectation.refuseOrSucceed("config.json")
            set("rope=not-an-object", rope, .string("llama3"), .refuse("config.json", "rope_parameters"))
            ropeCase("type-unknown", [("rope_type", .string("spiral"))], .refuse("config.json", "rope_type"))
            ropeCase("type-number", [("rope_type", .number(3))], .refuse("config.json", "rope_type"))
            ropeCase(
                "theta-0", [("rope_type", .string("default")), ("rope_theta", .number(0))],
                .refuse("config.json", "rope_theta|rope theta"))
            if base.id != "qwen2vl" {
                ropeCase("default", [("rope_type", .string("default"))], ropeAny)
                ropeCase("linear-2", [("rope_type", .string("linear")), ("factor", .number(2.0))], ropeAny)
                ropeCase(
                    "linear-factor-0", [("rope_type", .string("linear")), ("factor", .number(0))],
                    .refuse("config.json", "factor"))
                ropeCase(
                    "linear-factor-negative", [("rope_type", .string("linear")), ("factor", .number(-2.0))],
                    .refuse("config.json", "factor"))
                ropeCase("linear-factor-missing", [("rope_type", .string("linear"))], .refuse("config.json", "factor"))
                ropeCase("dynamic-2", [("rope_type", .string("dynamic")), ("factor", .number(2.0))], ropeAny)
                ropeCase(
                    "dynamic-factor-string", [("rope_type", .string("dynamic")), ("factor", .string("2"))],
                    .refuse("config.json", "factor"))
                ropeCase(
                    "yarn-4",
                    [
                        ("rope_type", .string("yarn")), ("factor", .number(4.0)),
                        ("original_max_position_embeddings", .number(32)),
                    ], ropeAny)
                ropeCase(
                    "yarn-factor-below-1",
                    [
                        ("rope_type", .string("yarn")), ("factor", .number(0.5)),
                        ("original_max_position_embeddings", .number(32)),
                    ],
                    .refuse("config.json", "factor"))
                ropeCase(
                    "yarn-beta-fast-string",
                    [
                        ("rope_type", .string("yarn")), ("factor", .number(4.0)),
                        ("beta_fast", .string("fast")),
                    ], .refuse("config.json", "beta_fast"))
                let eight = FuzzJSON.array((0..<8).map { _ in .number(1.0) })
                ropeCase(
                    "longrope",
                    [
                        ("rope_type", .string("longrope")), ("short_factor", eight), ("long_factor", eight),
                        ("original_max_position_embeddings", .number(32)),
                    ], ropeAny)
                ropeCase(
                    "longrope-short-list",
                    [
                        ("rope_type", .string("longrope")), ("short_factor", .array([.number(1.0)])),
                        ("long_factor", eight), ("original_max_position_embeddings", .number(32)),
                    ],
                    .refuse("config.json", "short_factor"))
                let llama3: [(String, FuzzJSON)] = [
                    ("rope_type", .string("llama3")), ("factor", .number(8.0)), ("low_freq_factor", .number(1.0)),
                    ("high_freq_factor", .number(4.0)), ("original_max_position_embeddings", .number(16)),
                ]
                func llama3Case(_ name: String, _ key: String, _ value: FuzzJSON?, _ e: Expectation) {
                    let params = llama3.compactMap { $0.0 == key ? value.map { v in (key, v) } : $0 }
                    ropeCase("llama3-\(name)", params, e)
                }
                for key in ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"] {
                    let refuse = Expectation.refuse("config.json", key)
                    llama3Case("\(key)=0", key, .number(0), refuse)
                    llama3Case("\(key)=negative", key, .number(-4), refuse)
                    llama3Case("\(key)=string", key, .string("4"), refuse)
                    llama3Case("\(key)-missing", key, nil, refuse)
                }
                llama3Case(
                    "original_max_position_embeddings=fraction", "original_max_position_embeddings",
                    .raw("16.5"), .refuse("config.json", "original_max_position_embeddings"))
                llama3Case("high=low", "high_freq_factor", .number(1.0), .refuse("config.json", "high_freq_factor"))
                llama3Case("high<low", "high_freq_factor", .number(0.5), .refuse("config.json", "high_freq_factor"))
                llama3Case("valid", "factor", .number(8.0), ropeAny)
                if base.id == "llama" {
                    // The transformers-4 spelling: rope_theta at the top, rope_scaling with `type`.
                    edit("rope=legacy-rope_scaling", .refuseOrSame("config.json", "rope_scaling")) { c in
                        c.setting("rope_parameters", nil).setting("rope_theta", .raw("10000.0")).setting(
                            "rope_scaling",
                            .object([
                                ("type", .string("llama3")), ("factor", .raw("8.0")), ("low_freq_factor", .raw("1.0")),
                                ("high_freq_factor", .raw("4.0")), ("original_max_position_embeddings", .number(16)),
                            ]))
                    }
                    set(
                        "mrope_section=negative-on-text-model", "rope_parameters.mrope_section",
                        .array([.number(-2), .number(5), .number(5)]), .refuseOrSame("config.json", "mrope_section"))
                }
            } else {
                let section = "text_config.rope_parameters.mrope_section"
                let refuse = Expectation.refuse("config.json", "mrope_section")
                for (label, value) in [("sum-9", [2, 3, 4]), ("negative", [-2, 5, 5]), ("sum-16", [4, 6, 6])] {
                    set("mrope_section=\(label)", section, .array(value.map { .number($0) }), refuse)
                }
                // transformers cycles the sections (t, h, w, t, …): any count summing to half the head is valid.
                for (label, value) in [("two-entries", [4, 4]), ("four-entries", [2, 2, 2, 2])] {
                    set(
                        "mrope_section=\(label)", section, .array(value.map { .number($0) }),
                        .refuseOrSucceed("config.json", "mrope_section"))
                }
                set(
                    "mrope_section=overflow-wraps", section,
                    .array([.raw("9223372036854775807"), .raw("9223372036854775807"), .number(10)]), refuse)
                set("mrope_section=empty", section, .array([]), refuse)
                set("mrope_section=fractions", section, .array([.raw("2.5"), .raw("2.5"), .number(3)]), refuse)
                set("mrope_section=strings", section, .array([.string("2"), .number(3), .number(3)]), refuse)
                set("mrope_section=missing", section, nil, refuse)
                set(
                    "mrope_section=reordered", section, .array([.number(3), .number(3), .number(2)]),
                    .refuseOrSucceed("config.json", "mrope_section"))
                set(
                    "vision_config.rope_parameters.rope_type=unknown", "vision_config.rope_parameters.rope_type",
                    .string("spiral"), .refuse("config.json", "rope_type"))
            }
            if base.id == "llava" {
                let refuse = Expectation.refuse("config.json", "vision_feature_layer")
                for (label, value) in [
                    ("99", FuzzJSON.number(99)), ("-99", .number(-99)), ("fraction", .raw("-2.5")),
                    ("string", .string("-2")),
                ] {
                    set("vision_feature_layer=\(label)", "vision_feature_layer", value, refuse)
                }
                // A list of layers is valid in transformers (features concatenated); the projector then disagrees.
                set(
                    "vision_feature_layer=list", "vision_feature_layer", .array([.number(-2), .number(-1)]),
                    .refuse("config.json|in/model", "vision_feature_layer|tensor \""))
                set(
                    "vision_feature_layer=-1", "vision_feature_layer", .number(-1),
                    .refuseOrSucceed("config.json", "vision_feature_layer"))
                set(
                    "vision_feature_select_strategy=unknown", "vision_feature_select_strategy", .string("pooled"),
                    .refuse("config.json", "vision_feature_select_strategy"))
                set(
                    "vision_feature_select_strategy=full", "vision_feature_select_strategy", .string("full"),
                    .refuseOrSucceed("config.json", "vision_feature_select_strategy"))
                set(
                    "projector_hidden_act=unknown", "projector_hidden_act", .string("swish-9"),
                    .refuse("config.json", "projector_hidden_act"))
                set(
                    "multimodal_projector_bias=false", "multimodal_projector_bias", .bool(false),
                    .refuse("config.json|in/model", "multimodal_projector_bias|never used"))
            }

            // The whole file.
            let refuse = Expectation.refuse("config.json")
            list.file(base, "not-json", refuse) { ws in try ws.write(file, text: "{\"hidden_size\": 64,") }
            list.file(base, "empty", refuse) { ws in try ws.write(file, Data()) }
            list.file(base, "array", refuse) { ws in try ws.write(file, text: "[]") }
            list.file(base, "null", refuse) { ws in try ws.write(file, text: "null") }
            list.file(base, "truncated-half", refuse) { ws in
                try ws.editBytes(file) { b in b.removeLast(b.count / 2) }
            }
            list.file(base, "utf8-bom", .refuseOrSame("config.json")) { ws in
                try ws.editBytes(file) { b in b.insert(contentsOf: [0xEF, 0xBB, 0xBF], at: 0) }
            }
            list.file(base, "not-utf8", refuse) { ws in try ws.editBytes(file) { b in b[b.count / 3] = 0xFF } }
            list.file(base, "nested-100000", refuse) { ws in
                try ws.write(
                    file, text: String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000))
            }
            edit("duplicate-key", .refuseOrSame("config.json", "model_type")) { c in
                .raw(c.text().replacingOccurrences(of: "{", with: "{\"model_type\": \"gpt2\", ", options: .anchored))
            }
            edit("reserialized", .same) { $0 }
            edit("keys-reordered", .same) { .object($0.members.reversed()) }
            if base.id == "llama" {
                list.file(base, "folder", refuse) { ws in try ws.makeFolder(file) }
                list.file(base, "missing", refuse) { ws in try ws.remove(file) }
                list.file(base, "fifo", refuse, timeout: 10) { ws in try ws.makeFIFO(file) }
            }
        }
        return list.cases
    }
}

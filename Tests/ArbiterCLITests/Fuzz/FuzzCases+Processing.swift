// preprocessor_config.json and tokenizer.json cases, on tiny-llava (CLIP processor, SentencePiece-style BPE)
// and tiny-qwen2-vl (Qwen2-VL processor, byte-level BPE).
import Foundation

extension FuzzCatalog {
    static func preprocessor() -> [FuzzCase] {
        var list = CaseList(.preprocessor, "preprocessor")
        let file = "model/preprocessor_config.json"
        let name = "preprocessor_config.json"
        for base in [FuzzBases.llava, FuzzBases.qwen] {
            func set(_ label: String, _ path: String, _ value: FuzzJSON?, _ e: Expectation) {
                list.file(base, "\(path)=\(label)", e) { ws in try ws.editJSON(file) { $0.setting(path, value) } }
            }
            let sizes =
                base.id == "llava"
                ? ["crop_size.height", "crop_size.width", "size.shortest_edge"]
                : ["min_pixels", "max_pixels", "patch_size", "merge_size", "temporal_patch_size"]
            for path in sizes {
                // A nested field (crop_size.height) may be named by its parent.
                let field = path.split(separator: ".").reversed().joined(separator: "|")
                let refuse = Expectation.refuse(name, field)
                set(
                    "0", path, .number(0),
                    base.id == "qwen2vl" && field == "min_pixels" ? .refuseOrSucceed(name, field) : refuse)
                set("-1", path, .number(-1), refuse)
                set("fraction", path, .raw("7.5"), refuse)
                set("string", path, .string("32"), refuse)
                set("1e9", path, .number(1_000_000_000), field == "max_pixels" ? .refuseOrSucceed(name, field) : refuse)
                set(
                    "int64-max", path, .raw("9223372036854775807"),
                    field == "max_pixels" ? .refuseOrSucceed(name, field) : refuse)
                set("missing", path, nil, .refuseOrSucceed(name, field))
            }
            if base.id == "llava" {
                set("16", "crop_size.height", .number(16), .refuseOrSucceed(name, "crop_size"))
                set("string", "crop_size", .string("32"), .refuse(name, "crop_size"))
                set("false", "do_center_crop", .bool(false), .refuseOrSucceed(name))
                set("false", "do_resize", .bool(false), .refuseOrSucceed(name))
            } else {
                set("above-max", "min_pixels", .number(4096), .refuse(name, "min_pixels"))
                set("1e12", "min_pixels", .raw("1000000000000"), .refuse(name, "min_pixels"))
                set("16", "max_pixels", .number(16), .refuseOrSucceed(name, "max_pixels"))
                set("8", "patch_size", .number(8), .refuse(name, "patch_size"))
                set("3", "merge_size", .number(3), .refuse(name, "merge_size"))
            }
            for key in ["image_mean", "image_std"] {
                let refuse = Expectation.refuse(name, key)
                set("two-entries", key, .array([.number(0.5), .number(0.5)]), refuse)
                set("four-entries", key, .array([.number(0.5), .number(0.5), .number(0.5), .number(0.5)]), refuse)
                set("strings", key, .array([.string("0.5"), .string("0.5"), .string("0.5")]), refuse)
                set("empty", key, .array([]), refuse)
                set("scalar", key, .number(0.5), .refuseOrSucceed(name, key))
                set("1e400", key, .array([.raw("1e400"), .number(0.5), .number(0.5)]), refuse)
            }
            set("zeros", "image_std", .array([.number(0), .number(0), .number(0)]), .refuse(name, "image_std"))
            set("0", "rescale_factor", .number(0), .refuseOrSucceed(name, "rescale_factor"))
            set("string", "rescale_factor", .string("1/255"), .refuse(name, "rescale_factor"))
            set("99", "resample", .number(99), .refuse(name, "resample"))
            set("string", "resample", .string("bicubic"), .refuse(name, "resample"))
            set("nearest", "resample", .number(0), .refuseOrSucceed(name, "resample"))
            set("string", "do_normalize", .string("yes"), .refuse(name, "do_normalize"))
            set("false", "do_convert_rgb", .bool(false), .refuseOrSame(name))
            set(
                "unknown", "image_processor_type", .string("SiglipImageProcessor"),
                .refuse(name, "image_processor_type"))
            set(
                "other-family", "image_processor_type",
                .string(base.id == "llava" ? "Qwen2VLImageProcessor" : "CLIPImageProcessor"),
                .refuse(name, "image_processor_type"))
            set("missing", "image_processor_type", nil, .refuseOrSame(name))
            set("extra", "arbiter_fuzz_extra", .number(1), .same)
            let refuse = Expectation.refuse(name)
            list.file(base, "not-json", refuse) { ws in try ws.write(file, text: "{\"do_resize\": tru") }
            list.file(base, "empty", refuse) { ws in try ws.write(file, Data()) }
            list.file(base, "array", refuse) { ws in try ws.write(file, text: "[1, 2]") }
            list.file(base, "folder", refuse) { ws in try ws.makeFolder(file) }
            list.file(base, "missing", .refuseOrSame(name)) { ws in try ws.remove(file) }
            list.file(base, "reserialized", .same) { ws in try ws.editJSON(file) { $0 } }
        }
        return list.cases
    }

    static func tokenizer() -> [FuzzCase] {
        var list = CaseList(.tokenizer, "tokenizer")
        let file = "model/tokenizer.json"
        let name = "tokenizer.json"
        for base in [FuzzBases.llava, FuzzBases.qwen] {
            let original = try! FuzzJSON.read(
                Repository.root
                    .appendingPathComponent("\(FuzzBases.models)/\(modelFolder(base))/tokenizer.json"))
            func set(_ label: String, _ path: String, _ value: FuzzJSON?, _ e: Expectation) {
                list.file(base, "\(path)=\(label)", e) { ws in try ws.editJSON(file) { $0.setting(path, value) } }
            }
            func edit(_ label: String, _ e: Expectation, _ change: @escaping @Sendable (FuzzJSON) -> FuzzJSON) {
                list.file(base, label, e) { ws in try ws.editJSON(file, change) }
            }
            let refuse = Expectation.refuse(name)
            var rng = FuzzRandom("tokenizer/\(base.id)")
            let vocab = original["model.vocab"]!.members
            let merges = original["model.merges"]!.elements
            let added = original["added_tokens"]!.elements
            let imageToken = base.id == "llava" ? "<image>" : "<|image_pad|>"

            // The model.
            set("unknown", "model.type", .string("Hexagram"), refuse.naming("Hexagram"))
            set("WordPiece", "model.type", .string("WordPiece"), .refuseOrSucceed(name))
            set("Unigram", "model.type", .string("Unigram"), refuse)
            set("missing", "model", nil, refuse.naming("model"))
            set("empty", "model.vocab", .object([]), refuse.naming("vocab"))
            set("array", "model.vocab", .array([]), refuse.naming("vocab"))
            let (victim, _) = rng.pick(vocab)
            set(
                "negative-id", "model.vocab", .object(vocab.map { $0.0 == victim ? ($0.0, .number(-3)) : $0 }),
                refuse.naming(victim))
            set(
                "id-beyond-model", "model.vocab",
                .object(vocab.map { $0.0 == victim ? ($0.0, .number(1_000_000_000)) : $0 }),
                refuse.naming(victim))
            set(
                "string-id", "model.vocab", .object(vocab.map { $0.0 == victim ? ($0.0, .string("7")) : $0 }),
                refuse.naming(victim))
            set(
                "duplicate-id", "model.vocab", .object(vocab.map { $0.0 == victim ? ($0.0, vocab[0].1) : $0 }),
                refuse.naming("vocab"))
            set(
                "fraction-id", "model.vocab", .object(vocab.map { $0.0 == victim ? ($0.0, .raw("7.5")) : $0 }),
                refuse.naming(victim))
            let merge = rng.pick(merges)
            set("one-token", "model.merges", .array(merges + [.array([.string("lonely")])]), refuse.naming("merges"))
            set(
                "three-tokens", "model.merges", .array(merges + [.array([.string("a"), .string("b"), .string("c")])]),
                refuse.naming("merges"))
            set(
                "unknown-token", "model.merges", .array(merges + [.array([.string("\u{2603}"), .string("\u{2604}")])]),
                refuse.naming("merges"))
            set("number", "model.merges", .number(5), refuse.naming("merges"))
            set(
                "legacy-strings", "model.merges",
                .array(
                    merges.map { m in
                        .string(m.elements.compactMap(\.stringValue).joined(separator: " "))
                    }), .refuseOrSame(name))
            set("string-without-space", "model.merges", .array(merges + [.string("lonely")]), refuse.naming("merges"))
            set("reordered", "model.merges", .array([merge] + merges.filter { $0 != merge }), .refuseOrSucceed(name))
            set("not-in-vocab", "model.unk_token", .string("<nope>"), .refuseOrSucceed(name, "<nope>"))
            set("string", "model.byte_fallback", .string("yes"), refuse.naming("byte_fallback"))
            set("unknown-field", "model.arbiter_fuzz_extra", .number(1), .refuseOrSame(name))

            // Added tokens.
            func addedCase(_ label: String, _ e: Expectation, _ change: @escaping @Sendable ([FuzzJSON]) -> [FuzzJSON])
            {
                edit("added_tokens=\(label)", e) { $0.setting("added_tokens", .array(change(added))) }
            }
            @Sendable func token(_ id: Int, _ content: String) -> FuzzJSON {
                .object([
                    ("id", .number(id)), ("content", .string(content)), ("single_word", .bool(false)),
                    ("lstrip", .bool(false)), ("rstrip", .bool(false)), ("normalized", .bool(false)),
                    ("special", .bool(true)),
                ])
            }
            let imageID = added.first { $0["content"]?.stringValue == imageToken }!["id"]!.integer!
            // An id no token has yet (below the model's vocabulary size).
            let freshID = (vocab.compactMap(\.1.integer) + added.compactMap { $0["id"]?.integer }).max()! + 1
            addedCase("empty-content", refuse.naming("added_tokens"), { $0 + [token(freshID, "")] })
            addedCase("id-beyond-model", refuse.naming("<fuzz>"), { $0 + [token(1_000_000, "<fuzz>")] })
            addedCase("negative-id", refuse.naming("<fuzz>|added_tokens"), { $0 + [token(-1, "<fuzz>")] })
            addedCase("duplicate-id", refuse.naming("added_tokens"), { $0 + [token(imageID, "<fuzz>")] })
            addedCase(
                "image-token-removed", refuse.naming(imageToken),
                { $0.filter { $0["content"]?.stringValue != imageToken } })
            addedCase(
                "image-token-other-id", refuse.naming(imageToken),
                { tokens in
                    tokens.map {
                        $0["content"]?.stringValue == imageToken ? $0.setting("id", .number(imageID - 1)) : $0
                    }
                })
            addedCase(
                "special-string", refuse.naming("special"),
                { tokens in tokens.map { $0.setting("special", .string("yes")) } })
            addedCase(
                "content-missing", refuse.naming("content"),
                { tokens in [tokens[0].setting("content", nil)] + tokens.dropFirst() })
            addedCase(
                "huge-content", .refuseOrSucceed(name),
                { $0 + [token(freshID, String(repeating: "ab", count: 50_000))] })
            addedCase("word-of-prompt", .refuseOrSucceed(name), { $0 + [token(freshID, "circle")] })
            set("object", "added_tokens", .object([]), refuse.naming("added_tokens"))

            // Normalizer, pre-tokenizer, post-processor, decoder.
            set("unknown", "normalizer", .object([("type", .string("Hexagram"))]), refuse.naming("Hexagram"))
            set("Lowercase", "normalizer", .object([("type", .string("Lowercase"))]), .refuseOrSucceed(name))
            set("unknown", "pre_tokenizer", .object([("type", .string("Hexagram"))]), refuse.naming("Hexagram"))
            @Sendable func split(_ pattern: String) -> FuzzJSON {
                .object([
                    ("type", .string("Split")), ("pattern", .object([("Regex", .string(pattern))])),
                    ("behavior", .string("Isolated")), ("invert", .bool(false)),
                ])
            }
            set("split-invalid-regex", "pre_tokenizer", split("(unclosed"), refuse.naming("(unclosed"))
            set("split-lookbehind", "pre_tokenizer", split("(?<=c)i"), .refuseOrSucceed(name))
            set(
                "split-string-pattern", "pre_tokenizer",
                .object([
                    ("type", .string("Split")), ("pattern", .object([("String", .string(" "))])),
                    ("behavior", .string("Removed")), ("invert", .bool(false)),
                ]), .refuseOrSucceed(name))
            set(
                "split-behavior-unknown", "pre_tokenizer",
                .object([
                    ("type", .string("Split")), ("pattern", .object([("String", .string(" "))])),
                    ("behavior", .string("Sideways")), ("invert", .bool(false)),
                ]), refuse.naming("Sideways"))
            // Nested quantifiers on a prompt that makes a backtracking engine explode: refuse or answer in time.
            list.add(base, "pre_tokenizer=split-nested-quantifiers", .refuseOrSucceed(name), timeout: 10) {
                ws, arguments in
                try ws.editJSON(file) { $0.setting("pre_tokenizer", split("(\\w+\\s?)+$")) }
                arguments[arguments.firstIndex(of: "--prompt")! + 1] = String(repeating: "a", count: 40) + "!"
            }
            set("unknown", "post_processor", .object([("type", .string("Hexagram"))]), refuse.naming("Hexagram"))
            set(
                "template-unknown-special", "post_processor",
                .object([
                    ("type", .string("TemplateProcessing")),
                    (
                        "single",
                        .array([
                            .object([("SpecialToken", .object([("id", .string("<nope>")), ("type_id", .number(0))]))]),
                            .object([("Sequence", .object([("id", .string("A")), ("type_id", .number(0))]))]),
                        ])
                    ),
                    ("pair", .array([])), ("special_tokens", .object([])),
                ]), refuse.naming("<nope>"))
            set("unknown", "decoder", .object([("type", .string("Hexagram"))]), refuse.naming("Hexagram"))

            // Truncation and padding written into the file.
            func truncation(_ maxLength: FuzzJSON) -> FuzzJSON {
                .object([
                    ("direction", .string("Right")), ("max_length", maxLength), ("strategy", .string("LongestFirst")),
                    ("stride", .number(0)),
                ])
            }
            set("max-length-8", "truncation", truncation(.number(8)), .refuseOrSucceed(name, "truncation"))
            set("max-length-0", "truncation", truncation(.number(0)), .refuseOrSucceed(name, "truncation"))
            set("max-length-negative", "truncation", truncation(.number(-1)), refuse.naming("max_length"))
            set("string", "truncation", .string("yes"), refuse.naming("truncation"))
            set(
                "object", "padding", .object([("strategy", .string("BatchLongest")), ("pad_id", .number(0))]),
                .refuseOrSame(name))
            set("2.0", "version", .string("2.0"), .refuseOrSame(name))

            // The whole file.
            list.file(base, "not-json", refuse) { ws in try ws.write(file, text: "{\"model\": {") }
            list.file(base, "empty", refuse) { ws in try ws.write(file, Data()) }
            list.file(base, "truncated-half", refuse) { ws in try ws.editBytes(file) { b in b.removeLast(b.count / 2) }
            }
            list.file(base, "array", refuse) { ws in try ws.write(file, text: "[]") }
            list.file(base, "missing", refuse) { ws in try ws.remove(file) }
            list.file(base, "folder", refuse) { ws in try ws.makeFolder(file) }
            list.file(base, "nested-100000", refuse) { ws in
                try ws.write(
                    file,
                    text: String(repeating: "{\"a\":", count: 100_000) + "1" + String(repeating: "}", count: 100_000))
            }
            edit("reserialized", .same) { $0 }
        }
        return list.cases
    }
}

// Prompt layout, dataset and HDF5 golden cases.
import Foundation

extension FuzzCatalog {
    static func layout() -> [FuzzCase] {
        var list = CaseList(.layout, "layout")
        let base = FuzzBases.layout
        let file = "layout.json"
        let refuse = Expectation.refuse("layout.json")
        func edit(_ name: String, _ e: Expectation, _ change: @escaping @Sendable (FuzzJSON) -> FuzzJSON) {
            list.file(base, name, e) { ws in try ws.editJSON(file, change) }
        }
        func pieces(_ name: String, _ e: Expectation, _ change: @escaping @Sendable ([FuzzJSON]) -> [FuzzJSON]) {
            edit("pieces-\(name)", e) { $0.setting("pieces", .array(change($0["pieces"]!.elements))) }
        }
        @Sendable func slot(_ name: String) -> @Sendable (FuzzJSON) -> Bool { { $0["slot"]?.stringValue == name } }
        for key in ["name", "pieces"] {
            edit("\(key)-missing", refuse.naming(key)) { $0.setting(key, nil) }
            edit("\(key)-number", refuse.naming(key)) { $0.setting(key, .number(7)) }
        }
        edit("pieces-empty", refuse.naming("pieces")) { $0.setting("pieces", .array([])) }
        edit("pieces-object", refuse.naming("pieces")) { $0.setting("pieces", .object([])) }
        edit("add_special_tokens-string", refuse.naming("add_special_tokens")) {
            $0.setting("add_special_tokens", .string("yes"))
        }
        edit("add_special_tokens-false", .refuseOrSucceed("layout.json")) {
            $0.setting("add_special_tokens", .bool(false))
        }
        edit("image_token-empty", refuse.naming("image_token")) { $0.setting("image_token", .string("")) }
        edit("image_token-unknown", refuse.naming("<picture>")) { $0.setting("image_token", .string("<picture>")) }
        edit("image_token-number", refuse.naming("image_token")) { $0.setting("image_token", .number(500)) }
        edit("answer_prefix-number", refuse.naming("answer_prefix")) { $0.setting("answer_prefix", .number(1)) }
        edit("unknown-key", refuse.naming("pieces_extra")) { $0.setting("pieces_extra", .array([])) }
        edit("misspelled-key", refuse.naming("image_tokn")) {
            $0.setting("image_token", nil).setting("image_tokn", .string("<image>"))
        }
        edit("description-removed", .same) { $0.setting("description", nil) }
        edit("name-changed", .refuseOrSucceed("layout.json")) { $0.setting("name", .string("mine")) }
        edit("keys-reordered", .same) { .object($0.members.reversed()) }
        edit("reserialized", .same) { $0 }
        pieces("text-and-slot", refuse.naming("piece 0")) { p in
            [p[0].setting("slot", .string("question"))] + p.dropFirst()
        }
        pieces("neither", refuse.naming("piece 0")) { p in [.object([("span", .string("system"))])] + p.dropFirst() }
        pieces("not-object", refuse.naming("piece 0|pieces[0]")) { p in [.string("USER:")] + p.dropFirst() }
        pieces("slot-twice", refuse.naming("question")) { p in p + [.object([("slot", .string("question"))])] }
        pieces("no-image-slot", refuse.naming("image")) { p in p.filter { !slot("image")($0) } }
        pieces("no-question-slot", refuse.naming("question")) { p in p.filter { !slot("question")($0) } }
        pieces("with-unknown-slot", refuse.naming("nowhere")) { p in
            p + [.object([("text", .string("x")), ("with", .string("nowhere"))])]
        }
        pieces("prefix-on-text", refuse.naming("prefix")) { p in [p[0].setting("prefix", .string(" "))] + p.dropFirst()
        }
        pieces("span-on-slot", refuse.naming("span")) { p in
            p.map { slot("question")($0) ? $0.setting("span", .string("system")) : $0 }
        }
        pieces("unknown-piece-key", refuse.naming("txt")) { p in [.object([("txt", .string("hello"))])] + p }
        pieces("slot-number", refuse.naming("slot")) { p in
            p.map { slot("question")($0) ? $0.setting("slot", .number(1)) : $0 }
        }
        pieces("slot-empty-name", refuse.naming("slot")) { p in p + [.object([("slot", .string(""))])] }
        pieces("slot-unknown-field", .refuseOrSucceed("layout.json", "colour")) { p in
            p + [.object([("slot", .string("colour"))])]
        }
        pieces("span-reserved-name", refuse.naming("image")) { p in
            [p[0].setting("span", .string("image"))] + p.dropFirst()
        }
        pieces("text-huge", refuse) { p in
            [.object([("text", .string(String(repeating: "the circle ", count: 100_000)))])] + p
        }
        pieces("text-empty", .refuseOrSame("layout.json")) { p in p + [.object([("text", .string(""))])] }
        pieces("text-null", refuse.naming("piece")) { p in p + [.object([("text", .null)])] }
        list.file(base, "not-json", refuse) { ws in try ws.write(file, text: "{\"name\": \"x\", \"pieces\": [") }
        list.file(base, "empty", refuse) { ws in try ws.write(file, Data()) }
        list.file(base, "array", refuse) { ws in try ws.write(file, text: "[]") }
        list.file(base, "folder", refuse) { ws in try ws.makeFolder(file) }
        list.file(base, "missing", refuse) { ws in try ws.remove(file) }
        list.file(base, "fifo", refuse, timeout: 10) { ws in try ws.makeFIFO(file) }
        return list.cases
    }

    static func dataset() -> [FuzzCase] {
        var list = CaseList(.dataset, "dataset")
        let file = "data/dataset.json"
        for base in [FuzzBases.dataCheck, FuzzBases.dataEval] {
            let refuse = Expectation.refuse("dataset.json")
            func edit(_ name: String, _ e: Expectation, _ change: @escaping @Sendable (FuzzJSON) -> FuzzJSON) {
                list.file(base, name, e) { ws in try ws.editJSON(file, change) }
            }
            func item(_ name: String, _ e: Expectation, _ change: @escaping @Sendable (FuzzJSON) -> FuzzJSON) {
                edit("item-\(name)", e) { $0.setting("items.0", change($0["items.0"]!)) }
            }
            // The top level.
            edit("format-other", refuse.naming("format")) { $0.setting("format", .string("llava-bench")) }
            edit("format-missing", refuse.naming("format")) { $0.setting("format", nil) }
            edit("version-2", refuse.naming("version")) { $0.setting("version", .number(2)) }
            edit("version-string", refuse.naming("version")) { $0.setting("version", .string("1")) }
            edit("version-fraction", refuse.naming("version")) { $0.setting("version", .raw("1.5")) }
            edit("items-missing", refuse.naming("items")) { $0.setting("items", nil) }
            edit("items-object", refuse.naming("items")) { $0.setting("items", .object([])) }
            edit("items-empty", base.id == "check" ? .refuseOrSucceed("dataset.json") : refuse) {
                $0.setting("items", .array([]))
            }
            edit("generator-string", .refuseOrSame("dataset.json", "generator")) {
                $0.setting("generator", .string("x"))
            }
            edit("reserialized", .same) { $0 }
            edit("keys-reordered", .same) { .object($0.members.reversed()) }
            // One item: each field missing, of the wrong type, or inconsistent.
            let itemRefusal = refuse.naming("item-00000")
            for field in [
                "id", "image", "task", "kind", "target", "context", "instruction", "question", "constraint",
                "answer_img", "answer_text", "answer_img_candidate_list", "answer_text_candidate_list",
                "expected", "scene",
            ] {
                let e = field == "id" ? refuse.naming("id") : itemRefusal.naming(field)
                item("\(field)-missing", e) { $0.setting(field, nil) }
            }
            for field in ["id", "question", "answer_img", "kind", "task"] {
                item("\(field)-number", field == "id" ? refuse.naming("id") : itemRefusal.naming(field)) {
                    $0.setting(field, .number(5))
                }
            }
            item("kind-unknown", itemRefusal.naming("kind")) { $0.setting("kind", .string("adversarial")) }
            item("target-unknown", itemRefusal.naming("target")) { $0.setting("target", .string("audio")) }
            item("task-unknown", .refuseOrSucceed("dataset.json", "item-00000")) {
                $0.setting("task", .string("texture"))
            }
            item("candidates-empty", itemRefusal.naming("answer_img_candidate_list")) {
                $0.setting("answer_img_candidate_list", .array([]))
            }
            item("candidates-string", itemRefusal.naming("answer_img_candidate_list")) {
                $0.setting("answer_img_candidate_list", .string("4"))
            }
            item("candidates-numbers", itemRefusal.naming("answer_img_candidate_list")) {
                $0.setting("answer_img_candidate_list", .array([.number(4)]))
            }
            item("answers-equal", itemRefusal) { $0.setting("answer_text", $0["answer_img"]!) }
            item("expected-wrong", itemRefusal.naming("expected")) { $0.setting("expected", .string("purple")) }
            item("instruction-split-unknown", itemRefusal.naming("instruction_split")) {
                $0.setting("instruction_split", .string("test"))
            }
            item("instruction-id-other-target", itemRefusal.naming("instruction_id")) {
                $0.setting("instruction_id", .string("txt-05"))
            }
            item("question-1MB", itemRefusal.naming("question")) {
                $0.setting("question", .string(String(repeating: "How many? ", count: 100_000)))
            }
            item("context-100KB", base.id == "check" ? .refuseOrSucceed("dataset.json", "item-00000") : itemRefusal) {
                $0.setting("context", .string(String(repeating: "purple ", count: 15_000)))
            }
            item("id-10KB", .refuseOrSucceed("dataset.json")) {
                $0.setting("id", .string(String(repeating: "i", count: 10_000)))
            }
            item("question-control-characters", .refuseOrSucceed("dataset.json", "item-00000")) {
                $0.setting("question", .string("How many\u{0}\u{7} diamonds\u{202E} are there?"))
            }
            item("extra-field", .refuseOrSame("dataset.json")) { $0.setting("arbiter_fuzz_note", .string("x")) }
            edit("duplicate-id", refuse.naming("item-00000")) { $0.setting("items.1.id", .string("item-00000")) }
            edit("item-string", refuse.naming("#0")) { $0.setting("items.0", .string("item-00000")) }
            edit("item-null", refuse.naming("#0")) { $0.setting("items.0", .null) }
            // The scene the item was drawn from.
            item("scene-string", itemRefusal.naming("scene")) { $0.setting("scene", .string("a circle")) }
            item("scene-empty", itemRefusal.naming("scene")) { $0.setting("scene", .object([])) }
            item("scene-size-1e9", itemRefusal.naming("size")) { $0.setting("scene.size", .number(1_000_000_000)) }
            item("scene-radius-1e9", itemRefusal.naming("scene")) {
                $0.setting("scene.objects.0.r", .number(1_000_000_000))
            }
            item("scene-null", .refuseOrSucceed("dataset.json", "item-00000")) { $0.setting("scene", .null) }
            // Image paths.
            let image = "data/images/item-00000.png"
            for (label, path) in [
                ("parent", "../outside.png"), ("absolute", "/etc/hostname"), ("empty", ""),
                ("missing", "images/nowhere.png"), ("folder", "images"), ("jpeg", "images/item-00000.jpg"),
                ("dot-segments", "images/../images/item-00000.png"),
            ] {
                let e =
                    label == "dot-segments"
                    ? Expectation.refuseOrSame("dataset.json", "item-00000") : itemRefusal.naming("image")
                list.file(base, "image-path-\(label)", e) { ws in
                    try ws.write("outside.png", try ws.read(image))
                    try ws.editJSON(file) { $0.setting("items.0.image", .string(path)) }
                }
            }
            list.file(base, "image-path-absolute-inside", itemRefusal.naming("image")) { ws in
                try ws.editJSON(file) { $0.setting("items.0.image", .string(ws.path(image))) }
            }
            list.file(base, "image-symlink-outside", .refuse("item-00000")) { ws in
                try ws.write("outside.png", try ws.read(image))
                try ws.makeLink(image, to: ws.path("outside.png"))
            }
            // The image files themselves.
            let png = Expectation.refuse("item-00000.png")
            list.file(base, "image-text-file", png) { ws in try ws.write(image, text: "not a picture\n") }
            list.file(base, "image-empty", png) { ws in try ws.write(image, Data()) }
            list.file(base, "image-truncated", png) { ws in try ws.editBytes(image) { b in b.removeLast(b.count / 2) } }
            list.file(base, "image-huge-ihdr", png) { ws in
                try ws.editBytes(image) { b in
                    b.setUInt32BE(100_000, at: 16)
                    b.setUInt32BE(100_000, at: 20)
                    FuzzPNG.fixCRC(&b, chunkAt: 8)
                }
            }
            list.file(base, "image-crc", png) { ws in try ws.editBytes(image) { b in b[29] ^= 1 } }
            list.file(base, "image-folder", png) { ws in try ws.makeFolder(image) }
            list.file(base, "image-other-picture", .refuseOrSucceed("item-00000")) { ws in
                try ws.write(image, Data(FuzzPNG.make(width: 32, height: 32)))
            }
            list.file(base, "image-fifo", png, timeout: 10) { ws in try ws.makeFIFO(image) }
            // The file.
            list.file(base, "not-json", refuse) { ws in try ws.write(file, text: "{\"format\": \"arbiter-conflict\",") }
            list.file(base, "empty", refuse) { ws in try ws.write(file, Data()) }
            list.file(base, "array", refuse) { ws in try ws.write(file, text: "[]") }
            list.file(base, "missing", refuse) { ws in try ws.remove(file) }
            list.file(base, "folder", refuse) { ws in try ws.makeFolder(file) }
            list.file(base, "nested-100000", refuse) { ws in
                try ws.write(
                    file, text: String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000))
            }
            list.add(base, "data-is-a-file", .refuse("data")) { ws, arguments in
                let i = arguments.firstIndex(of: "--data")! + 1
                arguments[i] = ws.path("data/dataset.json")
            }
        }
        return list.cases
    }

    static func hdf5() -> [FuzzCase] {
        var list = CaseList(.hdf5, "hdf5")
        let file = "golden.h5"
        for (base, source) in [
            (FuzzBases.golden("llama", "tiny-llama/random-24.h5"), "tiny-llama/random-24.h5"),
            (FuzzBases.golden("llava", "tiny-llava/image-prompt.h5"), "tiny-llava/image-prompt.h5"),
        ] {
            let original = try! [UInt8](
                Data(contentsOf: Repository.root.appendingPathComponent("GoldenData/activations/\(source)")))
            var rng = FuzzRandom("hdf5/\(base.id)")
            let refuse = Expectation.refuse("golden.h5")
            var mismatch = Expectation.refuseOrSame("golden.h5")
            mismatch.mismatchReport = true
            func edit(_ name: String, _ e: Expectation, _ change: @escaping @Sendable (inout [UInt8]) -> Void) {
                list.file(base, name, e) { ws in try ws.editBytes(file, change) }
            }
            for (label, cut) in [
                ("0", 0), ("8", 8), ("superblock", 40), ("512", 512), ("half", original.count / 2),
                ("last-byte", original.count - 1), ("minus-4096", original.count - 4096),
                ("random", rng.int(1024..<original.count - 1)),
            ] {
                edit("truncate-\(label)", refuse) { b in b.removeLast(b.count - cut) }
            }
            edit("signature", refuse) { b in b[1] = UInt8(ascii: "X") }
            edit("superblock-version", refuse) { b in b[8] = 9 }
            // Seeded byte flips anywhere: a refusal, a reported mismatch, or (in unused bytes) the same result.
            for i in 0..<12 {
                let at = rng.int(0..<original.count)
                let bit = UInt8(1 << rng.int(0..<8))
                edit("flip-\(i)@\(at)", mismatch) { b in b[at] ^= bit }
            }
            // Declared shapes (dataspace messages, version 1) made huge: the data behind them stays as it was.
            let spaces = dataspaces(original)
            for (i, (offset, rank)) in spaces.enumerated() where i % max(1, spaces.count / 4) == 0 {
                for (label, value) in [
                    ("1e8", UInt64(100_000_000)), ("2^40", UInt64(1) << 40), ("2^63", UInt64(1) << 63),
                ] {
                    edit("shape@\(offset)-dim0=\(label)", refuse) { b in
                        b.setUInt64(value, at: offset + 8)
                        b.setUInt64(value, at: offset + 8 + 8 * rank)
                    }
                }
                edit("shape@\(offset)-rank-swapped", refuse) { b in
                    guard rank >= 2 else {
                        b.setUInt64(0, at: offset + 8)
                        return
                    }
                    let d0 = b.uint64(at: offset + 8)
                    let d1 = b.uint64(at: offset + 16)
                    b.setUInt64(d1, at: offset + 8)
                    b.setUInt64(d0, at: offset + 16)
                }
            }
            // The model a golden file names, spelled otherwise (same length).
            let modelID = base.id == "llama" ? "tiny-llama" : "tiny-llava"
            edit("model_id-other", refuse.naming("tiny-xxxxx")) { b in
                replaceAll(&b, Array(modelID.utf8), Array("tiny-xxxxx".utf8))
            }
            edit(
                "model_id-parent", refuse.naming(".........."),
                { b in
                    replaceAll(&b, Array(modelID.utf8), Array("..........".utf8))
                })
            list.file(base, "text-file", refuse) { ws in try ws.write(file, text: "not hdf5\n") }
            list.file(base, "empty", refuse) { ws in try ws.write(file, Data()) }
            list.file(base, "safetensors", refuse) { ws in
                try ws.write(
                    file,
                    try Data(contentsOf: Repository.model("tiny-llama").appendingPathComponent("model.safetensors")))
            }
            if base.id == "llama" {
                list.file(base, "missing", refuse) { ws in try ws.remove(file) }
                list.file(base, "fifo", refuse, timeout: 10) { ws in try ws.makeFIFO(file) }
                list.file(base, "folder-without-h5", refuse) { ws in try ws.makeFolder(file) }
                list.add(base, "models-missing", .refuse("tiny-llama")) { ws, arguments in
                    arguments[arguments.firstIndex(of: "--models")! + 1] = ws.path("no-models")
                }
            }
        }
        return list.cases
    }

    /// Offsets of version-1 dataspace messages of rank 1…3 holding max dims (`01 rank 01 00 00000000`
    /// then dims then max dims equal to them).
    static func dataspaces(_ b: [UInt8]) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        for at in 0..<(b.count - 64)
        where b[at] == 1 && (1...3).contains(b[at + 1]) && b[at + 2] == 1
            && b[at + 3..<at + 8].allSatisfy({ $0 == 0 })
        {
            let rank = Int(b[at + 1])
            let dims = (0..<rank).map { b.uint64(at: at + 8 + 8 * $0) }
            let maxima = (0..<rank).map { b.uint64(at: at + 8 + 8 * (rank + $0)) }
            if dims == maxima && dims.allSatisfy({ (1...1 << 20).contains($0) }) { out.append((at, rank)) }
        }
        return out
    }

    static func replaceAll(_ b: inout [UInt8], _ old: [UInt8], _ new: [UInt8]) {
        var at = 0
        while at + old.count <= b.count {
            if Array(b[at..<at + old.count]) == old {
                b.replaceSubrange(at..<at + old.count, with: new)
                at += new.count
            } else {
                at += 1
            }
        }
    }
}

// Safetensors cases: the header length field, bytes between header and data, truncation, dtype/shape/offset
// edits of a seeded choice of tensors, overlapping and gapped buffers, NaN weights, non-regular files.
import Foundation

/// A list of cases of one kind being built.
struct CaseList {
    let kind: InputKind
    let slug: String
    var cases: [FuzzCase] = []

    init(_ kind: InputKind, _ slug: String) {
        self.kind = kind
        self.slug = slug
    }

    mutating func add(
        _ base: Base, _ name: String, _ expectation: Expectation, timeout: Double = 20,
        _ mutate: @escaping @Sendable (Workspace, inout [String]) throws -> Void
    ) {
        cases.append(
            FuzzCase(
                id: "\(slug)/\(base.id)/\(name)", kind: kind, base: base, expectation: expectation,
                timeout: timeout, mutate: mutate))
    }

    /// A case that edits one file of the workspace.
    mutating func file(
        _ base: Base, _ name: String, _ expectation: Expectation, timeout: Double = 20,
        _ edit: @escaping @Sendable (Workspace) throws -> Void
    ) {
        add(base, name, expectation, timeout: timeout) { ws, _ in try edit(ws) }
    }
}

/// A safetensors file taken apart: the 8-byte length, the JSON header, the data buffer.
struct SafetensorsParts {
    var header: FuzzJSON
    var data: [UInt8]

    init(_ bytes: [UInt8]) throws {
        let n = Int(bytes.uint64(at: 0))
        header = try FuzzJSON.parse(Data(bytes[8..<8 + n]))
        data = Array(bytes[(8 + n)...])
    }

    /// The file with a compact header padded with spaces to a multiple of 8 bytes (as the format recommends).
    func bytes(padding: UInt8 = 0x20) -> [UInt8] {
        var json = Array(header.text(pretty: false).utf8)
        while json.count % 8 != 0 { json.append(padding) }
        var out = [UInt8](repeating: 0, count: 8)
        out.setUInt64(UInt64(json.count), at: 0)
        return out + json + data
    }

    var tensors: [(name: String, entry: FuzzJSON)] {
        header.members.filter { $0.0 != "__metadata__" }.map { ($0.0, $0.1) }
    }

    func offsets(_ name: String) -> (Int, Int) {
        let o = header.child(name)?.child("data_offsets")?.elements.compactMap(\.integer) ?? [0, 0]
        return (o[0], o[1])
    }

    func shape(_ name: String) -> [Int] { header.child(name)?.child("shape")?.elements.compactMap(\.integer) ?? [] }
}

extension FuzzCatalog {
    static func safetensors() -> [FuzzCase] {
        var list = CaseList(.safetensors, "safetensors")
        let file = "model/model.safetensors"
        for base in [FuzzBases.llama, FuzzBases.llava, FuzzBases.qwen] {
            let original = try! [UInt8](
                Data(
                    contentsOf: Repository.root
                        .appendingPathComponent("\(FuzzBases.models)/\(modelFolder(base))/model.safetensors")))
            let parts = try! SafetensorsParts(original)
            var rng = FuzzRandom("safetensors/\(base.id)")
            let names = parts.tensors.map(\.name)
            let matrices = names.filter {
                let s = parts.shape($0)
                return s.count == 2 && s[0] != s[1]
            }
            let refuse = Expectation.refuse("model.safetensors")
            func edit(_ name: String, _ e: Expectation, _ change: @escaping @Sendable (inout [UInt8]) throws -> Void) {
                list.file(base, name, e) { ws in try ws.editBytes(file, change) }
            }
            func header(
                _ name: String, _ e: Expectation, _ change: @escaping @Sendable (inout SafetensorsParts) -> Void
            ) {
                edit(name, e) { bytes in
                    var p = try SafetensorsParts(bytes)
                    change(&p)
                    bytes = p.bytes()
                }
            }

            // The length field.
            let n = Int(original.uint64(at: 0))
            let total = original.count
            for delta in [4, -4, 64, -64, 1, -1] {
                edit("header-length\(delta > 0 ? "+" : "")\(delta)", refuse) { b in
                    b.setUInt64(b.uint64(at: 0) &+ UInt64(bitPattern: Int64(delta)), at: 0)
                }
            }
            for (label, value) in [
                ("0", UInt64(0)), ("2", 2), ("file-size", UInt64(n + 8 + parts.data.count)),
                ("whole-file", UInt64(n + parts.data.count)), ("int64-max", UInt64(Int64.max)),
                ("uint64-max", UInt64.max), ("2^32", 1 << 32),
            ] {
                edit("header-length=\(label)", refuse) { b in b.setUInt64(value, at: 0) }
            }
            // Bytes between the header and the data (the length unchanged: every tensor shifts).
            for count in [4, 64] {
                edit("insert-\(count)-bytes-after-header", refuse) { b in
                    let end = 8 + Int(b.uint64(at: 0))
                    b.insert(contentsOf: [UInt8](repeating: 0x3F, count: count), at: end)
                }
            }
            // Padding inside the header: spaces are what the format allows, other bytes are not.
            edit("header-padded-with-spaces", .same) { b in
                let n = Int(b.uint64(at: 0))
                b.insert(contentsOf: [UInt8](repeating: 0x20, count: 8), at: 8 + n)
                b.setUInt64(UInt64(n + 8), at: 0)
            }
            edit("header-padded-with-nul", refuse) { b in
                let n = Int(b.uint64(at: 0))
                b.insert(contentsOf: [UInt8](repeating: 0, count: 8), at: 8 + n)
                b.setUInt64(UInt64(n + 8), at: 0)
            }
            edit("header-padded-with-tabs-newlines", .refuseOrSame("model.safetensors")) { b in
                let n = Int(b.uint64(at: 0))
                b.insert(contentsOf: [0x0A, 0x09, 0x0A, 0x09, 0x20, 0x20, 0x0A, 0x0A], at: 8 + n)
                b.setUInt64(UInt64(n + 8), at: 0)
            }
            // Truncation.
            var cuts = [
                ("0", 0), ("4", 4), ("8", 8), ("header-half", 8 + n / 2), ("after-header", 8 + n),
                ("last-byte", total - 1), ("data-half", 8 + n + parts.data.count / 2),
            ]
            for i in 0..<3 { cuts.append(("random-\(i)", rng.int(8 + n + 1..<total - 1))) }
            for (label, cut) in cuts {
                edit("truncate-\(label)", refuse) { b in b.removeLast(b.count - cut) }
            }
            // Bytes after the data (slack) and holes in the buffer.
            edit("append-4-bytes", refuse) { b in b += [0, 0, 0, 0] }
            edit("append-4096-bytes", refuse) { b in b += [UInt8](repeating: 7, count: 4096) }

            // Header edits on seeded tensors.
            let t = rng.pick(names)
            let m = rng.pick(matrices)
            let last = names.max { parts.offsets($0).1 < parts.offsets($1).1 }!
            let tensorRefusal = refuse.naming(t)
            for dtype in ["F64", "F16", "BF16", "I64", "I8", "BOOL", "U8", "F8_E4M3", "XYZ", "f32", ""] {
                header("dtype=\(dtype.isEmpty ? "empty" : dtype)", tensorRefusal) { p in
                    p.header = p.header.setting(keys: [t, "dtype"], .string(dtype))
                }
            }
            header("dtype=number", tensorRefusal) { p in p.header = p.header.setting(keys: [t, "dtype"], .number(32)) }
            header("dtype-missing", tensorRefusal) { p in p.header = p.header.setting(keys: [t, "dtype"], nil) }
            let s = parts.shape(m)
            // A shape the config disagrees with may be reported for the model folder, with the tensor named.
            let mRefusal = Expectation.refuse("model.safetensors|in/model", m)
            let shapes: [(String, FuzzJSON)] = [
                ("swapped", .array([.number(s[1]), .number(s[0])])),
                ("scalar", .array([])),
                ("leading-1", .array([.number(1), .number(s[0]), .number(s[1])])),
                ("flattened", .array([.number(s[0] * s[1])])),
                ("negative", .array([.number(-s[0]), .number(-s[1])])),
                ("zero", .array([.number(0), .number(s[1])])),
                ("fraction", .array([.raw("\(s[0]).5"), .number(s[1])])),
                ("string", .array([.string("\(s[0])"), .number(s[1])])),
                ("huge", .array([.number(1 << 40), .number(1 << 20)])),
                ("overflow-wraps-to-count", .array([.number(1 << 32), .number(1 << 32), .number(s[0] * s[1])])),
                ("int64-max", .array([.raw("9223372036854775807"), .number(2)])),
                ("beyond-int64", .array([.raw("18446744073709551616"), .number(1)])),
                ("not-an-array", .number(s[0] * s[1])),
            ]
            // Shapes valid in the file (the counts match the bytes) but not what the config wants.
            let consistent: Set = ["swapped", "leading-1", "flattened"]
            for (label, shape) in shapes {
                header("shape=\(label)", consistent.contains(label) ? mRefusal : refuse.naming(m)) { p in
                    p.header = p.header.setting(keys: [m, "shape"], shape)
                }
            }
            header("shape-missing", refuse.naming(m)) { p in p.header = p.header.setting(keys: [m, "shape"], nil) }
            let (a, b) = parts.offsets(t)
            let size = parts.data.count
            let offsets: [(String, FuzzJSON)] = [
                ("shifted+4", .array([.number(a + 4), .number(b + 4)])),
                ("end+4", .array([.number(a), .number(b + 4)])),
                ("start-4", .array([.number(a - 4), .number(b)])),
                ("reversed", .array([.number(b), .number(a)])),
                ("beyond-buffer", .array([.number(size), .number(size + b - a)])),
                ("negative", .array([.number(-4), .number(b - a - 4)])),
                ("fraction", .array([.raw("\(a).5"), .number(b)])),
                ("strings", .array([.string("\(a)"), .string("\(b)")])),
                ("one-number", .array([.number(a)])),
                ("three-numbers", .array([.number(a), .number(b), .number(b)])),
                ("int64-max", .array([.raw("9223372036854775807"), .raw("9223372036854775807")])),
                ("wrap-around", .array([.raw("18446744073709551612"), .number(b - a - 4)])),
            ]
            for (label, value) in offsets {
                header("offsets=\(label)", tensorRefusal) { p in
                    p.header = p.header.setting(keys: [t, "data_offsets"], value)
                }
            }
            header("offsets-missing", tensorRefusal) { p in p.header = p.header.setting(keys: [t, "data_offsets"], nil)
            }
            // Two tensors on one region (the other's bytes left unread) and a hole.
            let same = names.filter { $0 != t && parts.shape($0) == parts.shape(t) }
            if let twin = same.first {
                header("overlap-with-\(twin.split(separator: ".").suffix(2).joined(separator: "."))", refuse) { p in
                    p.header = p.header.setting(
                        keys: [t, "data_offsets"], p.header.child(twin)!.child("data_offsets")!)
                }
            }
            let loaded = Expectation.refuse("model.safetensors|in/model", t)
            // Its bytes stay in the buffer: the exact-coverage check refuses the file first, naming the hole and
            // the tensors around it.
            header("tensor-removed", Expectation.refuse("model.safetensors|in/model", t + "|belong to no tensor")) { p in
                p.header = p.header.setting(keys: [t], nil)
            }
            header("tensor-renamed", loaded) { p in
                p.header = .object(p.header.members.map { $0.0 == t ? (t + "_renamed", $0.1) : $0 })
            }
            header("extra-tensor-aliasing", refuse.naming("extra.weight")) { p in
                p.header = .object(p.header.members + [("extra.weight", p.header.child(t)!)])
            }
            header("last-tensor-short", .refuse("model.safetensors|in/model", last)) { p in
                let (a, b) = p.offsets(last)
                var s = p.shape(last)
                s[0] -= 1
                p.header = p.header.setting(keys: [last, "shape"], .array(s.map { .number($0) }))
                p.header = p.header.setting(
                    keys: [last, "data_offsets"], .array([.number(a), .number(b - (b - a) / (s[0] + 1))]))
            }
            header("not-an-object", refuse) { p in p.header = .array([]) }
            header("metadata-not-strings", .refuseOrSame("model.safetensors", "__metadata__")) { p in
                p.header = p.header.setting("__metadata__", .object([("format", .number(1))]))
            }
            header("metadata-removed", .same) { p in p.header = p.header.setting("__metadata__", nil) }
            header("keys-reordered", .same) { p in p.header = .object(p.header.members.reversed()) }
            header("reserialized", .same) { _ in }
            edit("duplicate-key", .refuseOrSame("model.safetensors")) { b in
                var p = try SafetensorsParts(b)
                let dup = "{\"__metadata__\":{\"format\":\"pt\"}," + String(p.header.text(pretty: false).dropFirst())
                p.header = .raw(dup)
                b = p.bytes()
            }
            edit("header-byte-flipped", refuse) { b in b[8] = UInt8(ascii: "[") }
            edit("header-not-utf8", refuse) { b in
                let n = Int(b.uint64(at: 0))
                b[8 + n - 3] = 0xFF
            }
            // Weights that are not numbers, and an ordinary changed weight (valid: any answer is right).
            let nanTensor = rng.pick(names)
            for (label, bits) in [("nan", UInt32(0x7FC0_0000)), ("inf", 0x7F80_0000), ("-inf", 0xFF80_0000)] {
                edit("weight=\(label)", refuse.naming(nanTensor)) { b in
                    let p = try SafetensorsParts(b)
                    let (a, e) = p.offsets(nanTensor)
                    let at = b.count - p.data.count + a + 4 * ((e - a) / 8)
                    for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(i))) }
                }
            }
            let flip = rng.int(0..<parts.data.count / 4) * 4
            edit("weight-changed", .refuseOrSucceed("model.safetensors")) { b in
                b[b.count - parts.data.count + flip + 1] ^= 0x10
            }
        }
        // Files that are not regular files (one base: each hang costs the time limit).
        let base = FuzzBases.llama
        let refuse = Expectation.refuse("model.safetensors")
        list.file(base, "fifo", refuse, timeout: 10) { ws in try ws.makeFIFO(file) }
        list.file(base, "folder", refuse) { ws in try ws.makeFolder(file) }
        list.file(base, "link-to-dev-null", refuse) { ws in try ws.makeLink(file, to: "/dev/null") }
        list.file(base, "link-to-dev-zero", refuse, timeout: 10) { ws in try ws.makeLink(file, to: "/dev/zero") }
        list.file(base, "dangling-link", refuse) { ws in try ws.makeLink(file, to: ws.path("nowhere")) }
        list.file(base, "empty", refuse) { ws in try ws.write(file, Data()) }
        list.file(base, "missing", refuse) { ws in try ws.remove(file) }
        list.file(base, "text-file", refuse) { ws in
            try ws.write(file, text: "version https://git-lfs.github.com/spec/v1\n")
        }
        return list.cases
    }

    /// The GoldenData model folder a base copies.
    static func modelFolder(_ base: Base) -> String {
        ["llama": "tiny-llama", "llava": "tiny-llava", "qwen2vl": "tiny-qwen2-vl"][base.id]!
    }
}

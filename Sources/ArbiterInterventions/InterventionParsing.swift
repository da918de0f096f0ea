// The textual forms of interventions used on the command line and in reports:
//   knockout   "image->instruction@10-16", "context->last@3", "0-4,9->last@0-2/heads=1,3"
//   heads      "14.3,15.7"          (layer.head)
//   amplify    "14.3x2.0,15.7x2"    (layer.head x factor)
//   MLP scale  "10-12x0"            (layers x factor)
import ArbiterModels
import Foundation

public enum InterventionSyntax {
    /// The largest layer, head or position index a textual intervention may name, and the most numbers one list
    /// may expand to: 2^20 is beyond any model's layers and any prompt a CPU run can hold (the prompt length is
    /// bounded by the model's positions, checked when the hooks are installed). It keeps "0-100000000000" from
    /// allocating before that check.
    public static let maximumIndex = 1 << 20
    /// Parses "KEYS->QUERIES@LAYERS[/heads=H,…]". KEYS and QUERIES are span names or positions
    /// ("3", "3-7", "0-4,9"); information flows from KEYS into QUERIES.
    public static func knockout(_ text: String) throws -> Intervention {
        var body = Substring(text.trimmingCharacters(in: .whitespaces))
        var heads: [Int]? = nil
        if let slash = body.firstIndex(of: "/") {
            let option = body[body.index(after: slash)...]
            guard option.hasPrefix("heads=") else { throw bad(text, "after '/', only 'heads=…' is understood") }
            heads = try integers(String(option.dropFirst(6)), text)
            body = body[..<slash]
        }
        guard let at = body.lastIndex(of: "@") else {
            throw bad(text, "missing '@LAYERS' (e.g. image->instruction@10-16)")
        }
        let layers = try integers(String(body[body.index(after: at)...]), text)
        let edge = body[..<at]
        guard let arrow = edge.range(of: "->") else { throw bad(text, "missing '->' between keys and queries") }
        let keys = try selector(String(edge[..<arrow.lowerBound]), text)
        let queries = try selector(String(edge[arrow.upperBound...]), text)
        return .knockout(keys: keys, queries: queries, layers: layers, heads: heads)
    }

    /// Parses "L.H,L.H".
    public static func heads(_ text: String) throws -> [HeadIndex] {
        let parts = text.split(separator: ",")
        guard !parts.isEmpty else { throw bad(text, "no heads (want LAYER.HEAD,…)") }
        return try parts.map { try head(String($0), text) }
    }

    /// Parses "L.HxF,…" into (head, factor) pairs.
    public static func amplifications(_ text: String) throws -> [(HeadIndex, Float)] {
        let parts = text.split(separator: ",")
        guard !parts.isEmpty else { throw bad(text, "no heads (want LAYER.HEADxFACTOR,…)") }
        return try parts.map { part in
            let pieces = part.split(separator: "x")
            guard pieces.count == 2, let factor = Float(pieces[1]), factor.isFinite else {
                throw bad(text, "want LAYER.HEADxFACTOR with a finite factor, got '\(part)'")
            }
            return (try head(String(pieces[0]), text), factor)
        }
    }

    /// Parses "LAYERSxF" (e.g. "10-12x0").
    public static func mlpScale(_ text: String) throws -> Intervention {
        let pieces = text.split(separator: "x")
        guard pieces.count == 2, let factor = Float(pieces[1]), factor.isFinite else {
            throw bad(text, "want LAYERSxFACTOR with a finite factor (e.g. 10-12x0)")
        }
        return .scaleMLP(layers: try integers(String(pieces[0]), text), factor: factor)
    }

    static func head(_ part: String, _ whole: String) throws -> HeadIndex {
        let p = part.split(separator: ".")
        guard p.count == 2, let l = Int(p[0]), let h = Int(p[1]) else {
            throw bad(whole, "want LAYER.HEAD, got '\(part)'")
        }
        guard (0...maximumIndex).contains(l), (0...maximumIndex).contains(h) else {
            throw bad(whole, "'\(part)': layer and head must be in 0…\(maximumIndex)")
        }
        return HeadIndex(layer: l, head: h)
    }

    static func selector(_ part: String, _ whole: String) throws -> PositionSelector {
        let trimmed = part.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw bad(whole, "empty key or query set") }
        if trimmed.first!.isNumber { return .positions(try integers(trimmed, whole)) }
        return .span(trimmed)
    }

    /// "3", "3-7", "0-4,9" → integers.
    static func integers(_ part: String, _ whole: String) throws -> [Int] {
        var out: [Int] = []
        let range = 0...maximumIndex
        for item in part.split(separator: ",") {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            if bounds.count == 1, let v = Int(bounds[0]) {
                guard range.contains(v) else { throw bad(whole, "'\(item)' is outside 0…\(maximumIndex)") }
                out.append(v)
                continue
            }
            guard bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a <= b else {
                throw bad(whole, "'\(item)' is not a number or an increasing range a-b")
            }
            guard range.contains(a), range.contains(b) else {
                throw bad(whole, "'\(item)' reaches outside 0…\(maximumIndex)")
            }
            guard out.count + (b - a + 1) <= maximumIndex else {
                throw bad(whole, "'\(part)' lists more than \(maximumIndex) numbers")
            }
            out += Array(a...b)
        }
        guard !out.isEmpty else { throw bad(whole, "no numbers in '\(part)'") }
        return out
    }

    static func bad(_ text: String, _ problem: String) -> ModelError {
        .invalidInput("cannot read intervention '\(text)': \(problem)")
    }
}

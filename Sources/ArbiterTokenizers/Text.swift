// Text utilities shared by the stages: exact (scalar-wise) string keys, the Unicode character classes of the
// Rust `tokenizers` crate, regex and literal patterns, and `NormalizedString::split`'s delimiter behaviors
// (tokenizers/src/tokenizer/normalizer.rs, pattern.rs). Everything works on Unicode scalars (Rust `char`s),
// never on Swift `Character`s (grapheme clusters) and never with canonical-equivalence comparisons.
import Foundation

/// A string that compares and hashes by its exact UTF-8 bytes. Swift's `String ==` treats canonically
/// equivalent strings ("é" and "e\u{301}") as equal; vocabularies must not.
struct ExactString: Hashable, Sendable {
    let value: String

    init(_ value: String) { self.value = value }

    static func == (a: ExactString, b: ExactString) -> Bool {
        var x = a.value, y = b.value
        return x.withUTF8 { bx in
            y.withUTF8 { by in
                guard bx.count == by.count else { return false }
                guard let px = bx.baseAddress, let py = by.baseAddress else { return true }  // both empty
                return memcmp(px, py, bx.count) == 0
            }
        }
    }

    func hash(into hasher: inout Hasher) {
        var copy = value
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

extension String {
    /// Exact scalar-wise equality (no canonical equivalence).
    func exactlyEquals(_ other: String) -> Bool { utf8.elementsEqual(other.utf8) }

    /// Exact scalar-wise prefix test (Foundation's `hasPrefix` may normalize).
    func exactlyStarts(with prefix: String) -> Bool { utf8.starts(with: prefix.utf8) }

    init(scalars: some Sequence<Unicode.Scalar>) {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self = String(view)
    }
}

/// Character classes as the Rust crate defines them.
enum CharClass {
    /// `char::is_whitespace` and the `regex` crate's `\s`: the White_Space property.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    /// The `regex` crate's Unicode `\w`: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
    static func isWord(_ s: Unicode.Scalar) -> Bool {
        let p = s.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// `char::is_numeric`: Nd, Nl, No.
    static func isNumeric(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Combining marks (Mn, Mc, Me), as removed by `StripAccents`.
    static func isCombiningMark(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }

    /// `is_bert_punc`: ASCII punctuation or any Unicode punctuation category.
    static func isBertPunctuation(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII, let ascii = Optional(UInt8(s.value)),
           (0x21...0x2F).contains(ascii) || (0x3A...0x40).contains(ascii) || (0x5B...0x60).contains(ascii)
            || (0x7B...0x7E).contains(ascii) {
            return true
        }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }
}

/// An ICU regular expression (NSRegularExpression) used on Unicode-scalar strings.
/// NSRegularExpression is immutable and safe to share across threads.
///
/// ICU backtracks, so a pattern with nested quantifiers (`(a+)+b`, `(\w+\s?)*$`) can take exponential time:
/// one took 22 s on 40 characters. Every search therefore runs under a step budget and throws a named error
/// when it runs out. A budget was chosen over refusing such patterns when the file is loaded: exponential
/// patterns cannot be recognised reliably from their text (`(a|a)*b` and `(a|ab)*c` have no nested quantifier),
/// while the budget bounds every pattern, also the ones no check foresaw, and leaves well-behaved patterns
/// untouched (the GPT-2, Llama-3 and Qwen2 patterns save a few states per character; the budget allows 1000).
/// Oniguruma, which `tokenizers` runs, has a retry limit for the same reason.
final class ICURegex: @unchecked Sendable {
    let pattern: String
    private let regex: NSRegularExpression
    /// Where the pattern comes from, for errors: the file and the key path (or stage) inside it.
    private let file: String
    private let context: String

    /// Backtracking states one search may save: a fixed allowance plus a per-UTF-16-unit one.
    static let baseSteps = 1_000_000
    static let stepsPerUnit = 1_000
    /// ICU saves this many states between two progress reports (`TIMER_INITIAL_VALUE` in rematch.cpp).
    static let stepsPerReport = 10_000

    init(_ pattern: String, file: String, context: String) throws {
        self.pattern = pattern
        self.file = file
        self.context = context
        do {
            regex = try NSRegularExpression(pattern: pattern, options: [])
        } catch {
            throw TokenizerError(.unsupported, file: file, "\(context): regex /\(pattern)/ does not compile: \(error)")
        }
    }

    /// Ranges of every non-overlapping match, left to right. Throws when the search exceeds its step budget or
    /// when ICU fails (its backtracking stack is bounded too); ICU would otherwise just stop, and the matches
    /// found so far would pass for all of them.
    /// (Foundation's `Range(NSRange, in:)` returns nil for ranges that are not on grapheme-cluster boundaries,
    /// such as one emoji of a ZWJ sequence, so UTF-16 offsets are converted by walking the UTF-16 view.)
    func matches(in text: String) throws -> [Range<String.Index>] {
        let utf16 = text.utf16
        let length = utf16.count
        let whole = NSRange(location: 0, length: length)
        // With `.reportProgress`, ICU calls back once every `stepsPerReport` saved states, and once for each start
        // position `find` skips: at most one per UTF-16 unit, plus one per match (an empty match moves on by one).
        let steps = Self.baseSteps + Self.stepsPerUnit * length
        let allowedReports = steps / Self.stepsPerReport + 2 * (length + 1)
        var reports = 0, outOfSteps = false, failed = false
        var found: [NSRange] = []
        let options: NSRegularExpression.MatchingOptions = [.reportProgress, .reportCompletion]
        regex.enumerateMatches(in: text, options: options, range: whole) { match, flags, stop in
            if let match {
                if match.range.location != NSNotFound { found.append(match.range) }
            } else if flags.contains(.completed) {
                failed = flags.contains(.internalError)
            } else {
                reports += 1
                if reports > allowedReports {
                    outOfSteps = true
                    stop.pointee = true
                }
            }
        }
        if outOfSteps {
            throw TokenizerError(.unsupported, file: file, "\(context): regex /\(pattern)/ gave up on a "
                + "\(length)-unit text after about \(steps) backtracking steps; it backtracks catastrophically "
                + "(look for nested quantifiers such as (a+)+ or alternatives that match the same text)")
        }
        if failed {
            throw TokenizerError(.unsupported, file: file, "\(context): regex /\(pattern)/ failed on a "
                + "\(length)-unit text inside ICU (its backtracking stack is bounded)")
        }
        var cursor = utf16.startIndex
        var cursorOffset = 0
        func index(at offset: Int) -> String.Index {
            cursor = utf16.index(cursor, offsetBy: offset - cursorOffset)
            cursorOffset = offset
            return cursor
        }
        return found.map { range in
            let lower = index(at: range.location)
            return lower..<index(at: range.location + range.length)
        }
    }
}

/// What `Split`, `Replace` and friends match: `{"String": ...}` (a literal) or `{"Regex": ...}`.
enum TextPattern: Sendable {
    case literal([Unicode.Scalar])
    case regex(ICURegex)
    case predicate(@Sendable (Unicode.Scalar) -> Bool)

    static func parse(_ node: JSONNode) throws -> TextPattern {
        if let literal = try node.optional("String") {
            return .literal(Array(try literal.string().unicodeScalars))
        }
        if let regex = try node.optional("Regex") {
            return .regex(try ICURegex(onigToICU(try regex.string()), file: node.file, context: node.path))
        }
        throw node.error(.malformed, "a pattern must be {\"String\": ...} or {\"Regex\": ...}")
    }

    /// `Pattern::find_matches`: pieces covering all of `text`, each flagged as a match or not. Throws when a
    /// regex runs out of its step budget (see ICURegex).
    func findMatches(_ text: String) throws -> [(range: Range<String.Index>, isMatch: Bool)] {
        if text.isEmpty { return [(text.startIndex..<text.startIndex, false)] }
        let matchRanges: [Range<String.Index>]
        switch self {
        case .regex(let regex):
            matchRanges = try regex.matches(in: text)
        case .literal(let needle):
            matchRanges = Self.literalMatches(needle, in: text)
        case .predicate(let test):
            let scalars = text.unicodeScalars
            matchRanges = scalars.indices.compactMap { i in
                test(scalars[i]) ? i..<scalars.index(after: i) : nil
            }
        }
        return Self.pieces(text, matches: matchRanges)
    }

    /// `matches` and the text between them, in order.
    private static func pieces(_ text: String,
                               matches: [Range<String.Index>]) -> [(range: Range<String.Index>, isMatch: Bool)] {
        var pieces: [(range: Range<String.Index>, isMatch: Bool)] = []
        var previous = text.startIndex
        for match in matches {
            if previous != match.lowerBound { pieces.append((previous..<match.lowerBound, false)) }
            pieces.append((match, true))
            previous = match.upperBound
        }
        if previous != text.endIndex { pieces.append((previous..<text.endIndex, false)) }
        return pieces
    }

    private static func literalMatches(_ needle: [Unicode.Scalar], in text: String) -> [Range<String.Index>] {
        guard !needle.isEmpty else { return [] }
        let scalars = text.unicodeScalars
        let indices = Array(scalars.indices) + [scalars.endIndex]
        let hay = Array(scalars)
        var result: [Range<String.Index>] = []
        var i = 0
        while i + needle.count <= hay.count {
            if hay[i] == needle[0], Array(hay[i..<i + needle.count]) == needle {
                result.append(indices[i]..<indices[i + needle.count])
                i += needle.count
            } else {
                i += 1
            }
        }
        return result
    }

    /// `NormalizedString::replace`: every match replaced by `content`.
    func replaceAll(in text: String, with content: String) throws -> String {
        Self.replacing(try findMatches(text), in: text, with: content)
    }

    /// `replaceAll` for a literal, which cannot fail (decoders' fixed rules).
    static func replacingLiteral(_ needle: String, in text: String, with content: String) -> String {
        replacing(pieces(text, matches: literalMatches(Array(needle.unicodeScalars), in: text)), in: text,
                  with: content)
    }

    private static func replacing(_ pieces: [(range: Range<String.Index>, isMatch: Bool)], in text: String,
                                  with content: String) -> String {
        var out = String.UnicodeScalarView()
        for piece in pieces {
            if piece.isMatch, !piece.range.isEmpty {
                out.append(contentsOf: content.unicodeScalars)
            } else {
                out.append(contentsOf: text.unicodeScalars[piece.range])
            }
        }
        return String(out)
    }
}

/// tokenizer.json regexes are Oniguruma regexes, run here by ICU. The two agree on `\s`, `\d`, `\p{…}`,
/// lookahead and inline flags, but not on `\w`: Oniguruma's excludes the joiners U+200C/U+200D that ICU's
/// includes, and outside brackets it also takes the Latin-1 numbers ² ³ ¹ ¼ ½ ¾. `\w` and `\W` are rewritten
/// into ICU sets with those differences (ICU allows sets nested in a bracket expression).
func onigToICU(_ pattern: String) -> String {
    let joiners = #"[\u200C\u200D]"#
    let latin1Numbers = #"[\u00B2\u00B3\u00B9\u00BC-\u00BE]"#
    var out = ""
    var depth = 0  // bracket-expression nesting
    var scalars = pattern.unicodeScalars.makeIterator()
    while let c = scalars.next() {
        switch c {
        case "[":
            depth += 1
            out.unicodeScalars.append(c)
        case "]":
            depth = max(0, depth - 1)
            out.unicodeScalars.append(c)
        case "\\":
            guard let next = scalars.next() else {
                out.unicodeScalars.append(c)
                break
            }
            switch (next, depth > 0) {
            case ("w", true): out += "[\\w--\(joiners)]"
            case ("w", false): out += "[[\\w\(latin1Numbers)]--\(joiners)]"
            case ("W", true): out += "[[^\\w]\(joiners)]"
            case ("W", false): out += "[[[^\\w]\(joiners)]--\(latin1Numbers)]"
            default:
                out.unicodeScalars.append(c)
                out.unicodeScalars.append(next)
            }
        default:
            out.unicodeScalars.append(c)
        }
    }
    return out
}

/// `SplitDelimiterBehavior`: what happens to the delimiter when splitting.
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    static func parse(_ node: JSONNode) throws -> SplitBehavior {
        let name = try node.string()
        guard let behavior = SplitBehavior(rawValue: name) else {
            throw node.error(.unsupported, "unknown split behavior '\(name)' (expected Removed, Isolated, "
                + "MergedWithPrevious, MergedWithNext or Contiguous)")
        }
        return behavior
    }
}

/// `NormalizedString::split`: the non-empty pieces of `text`, split on `pattern` with `behavior`.
func split(_ text: String, on pattern: TextPattern, behavior: SplitBehavior, invert: Bool = false) throws -> [String] {
    try splitRanges(text, on: pattern, behavior: behavior, invert: invert).map {
        String(scalars: text.unicodeScalars[$0])
    }
}

/// The ranges of the pieces `split` returns.
func splitRanges(_ text: String, on pattern: TextPattern, behavior: SplitBehavior,
                 invert: Bool = false) throws -> [Range<String.Index>] {
    var matches = try pattern.findMatches(text)
    if invert { matches = matches.map { ($0.range, !$0.isMatch) } }
    // (range, remove)
    var pieces: [(range: Range<String.Index>, remove: Bool)] = []
    switch behavior {
    case .isolated:
        pieces = matches.map { ($0.range, false) }
    case .removed:
        pieces = matches.map { ($0.range, $0.isMatch) }
    case .contiguous:
        var previousMatch = false
        for m in matches {
            if m.isMatch == previousMatch, let last = pieces.last {
                pieces[pieces.count - 1].range = last.range.lowerBound..<m.range.upperBound
            } else {
                pieces.append((m.range, false))
            }
            previousMatch = m.isMatch
        }
    case .mergedWithPrevious:
        var previousMatch = false
        for m in matches {
            if m.isMatch, !previousMatch, let last = pieces.last {
                pieces[pieces.count - 1].range = last.range.lowerBound..<m.range.upperBound
            } else {
                pieces.append((m.range, false))
            }
            previousMatch = m.isMatch
        }
    case .mergedWithNext:
        var previousMatch = false
        for m in matches.reversed() {
            if m.isMatch, !previousMatch, let last = pieces.last {
                pieces[pieces.count - 1].range = m.range.lowerBound..<last.range.upperBound
            } else {
                pieces.append((m.range, false))
            }
            previousMatch = m.isMatch
        }
        pieces.reverse()
    }
    return pieces.filter { !$0.remove && !$0.range.isEmpty }.map(\.range)
}

/// A binary min-heap (swift-collections is not a dependency).
struct MinHeap<Element> {
    private var items: [Element] = []
    private let less: (Element, Element) -> Bool

    init(less: @escaping (Element, Element) -> Bool) { self.less = less }

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ element: Element) {
        items.append(element)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count, less(items[left], items[smallest]) { smallest = left }
            if right < items.count, less(items[right], items[smallest]) { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}

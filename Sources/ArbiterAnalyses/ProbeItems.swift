// From dataset items (our generator, the paper's sets, MC²) to probe items: the image decoded (from the
// dataset folder's file, or drawn by the generator for a set generated in memory), and the answer sets each item
// is scored on.
import ArbiterData
import ArbiterFormats
import Foundation

public enum ProbeItems {
    /// Probe items for `set`. Conflict items are scored instructed vs competing modality; consistent and
    /// unimodal items the expected answer vs the nearest other answer of the same task (so that accuracy
    /// means "prefers the right answer to a wrong one"); items without an instruction are skipped.
    public static func make(_ set: ConflictSet) throws -> [ProbeItem] {
        // Answers per task, to draw a wrong answer for non-conflict items deterministically.
        var answers: [String: [String: [String]]] = [:]
        for item in set.items {
            answers[item.task, default: [:]][item.answerImg] = item.answerImgCandidates
            answers[item.task, default: [:]][item.answerText] = item.answerTextCandidates
        }
        var out: [ProbeItem] = []
        for item in set.items where item.kind != .noInstruction {
            // The file in the dataset folder (checked; its scene only checks it), or for a set generated in memory
            // the scene's drawing.
            let image = try set.image(for: item)
            let instructed: [String], competitor: [String]
            var target: InstructionTarget? = nil
            switch item.kind {
            case .conflict:
                guard let t = item.target else { continue }
                target = t == .image ? .image : .text
                instructed = t == .image ? item.answerImgCandidates : item.answerTextCandidates
                competitor = t == .image ? item.answerTextCandidates : item.answerImgCandidates
            case .consistent, .imageOnly, .textOnly:
                let expected = item.kind == .textOnly ? item.answerText : item.answerImg
                instructed = item.kind == .textOnly ? item.answerTextCandidates : item.answerImgCandidates
                let others = (answers[item.task] ?? [:]).keys.filter { $0 != expected && $0 != item.answerText }
                    .sorted()
                let other = item.kind == .imageOnly && item.answerText != expected ? item.answerText
                    : others.isEmpty ? nil : others[abs(item.id.hashValueStable) % others.count]
                guard let other, let list = answers[item.task]?[other] else { continue }
                competitor = list
            case .noInstruction:
                continue
            }
            out.append(ProbeItem(id: item.id, kind: item.kind.rawValue, target: target, fields: item.fields,
                                 image: image,
                                 instructed: instructed, competitor: competitor))
        }
        return out
    }
}

extension String {
    /// A hash that is stable across runs (Swift's `hashValue` is seeded per process).
    var hashValueStable: Int {
        var h: UInt64 = 1469598103934665603
        for b in utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
        return Int(truncatingIfNeeded: h >> 1)
    }
}

// The table of `arbiter verify --plan`: one row per analysis stage, totals, memory, and what the plan assumes.
import ArbiterAnalyses
import Foundation

enum PlanTable {
    static func text(_ p: VerifyPlan) -> String {
        let s = p.shape
        var lines: [String] = []
        let vision = s.vision.map { ", vision \($0.layers) layers × \($0.width)" } ?? ""
        lines.append("Plan of `arbiter verify` on \(p.model) (\(s.modelType): \(s.layers) layers × \(s.heads) heads, "
                     + "hidden \(s.hidden)\(vision))")
        lines.append("items: \(p.items) (\(p.dataset)); prompts \(format(p.meanTokens, 0)) tokens on average, "
                     + "at most \(p.maxTokens), \(format(p.meanImageTokens, 0)) image tokens")
        let header = ["stage", "passes", "TFLOP", "TFLOP before", "ratio", "predicted", "pilot", "assumes"]
        var rows: [[String]] = p.stages.map { st in
            [st.name, "\(st.passes)", tflop(st.flops), tflop(st.flopsBefore),
             st.flops > 0 ? format(st.flopsBefore / st.flops, 1) + "×" : "–", duration(st.seconds),
             st.pilotScale.map { "×" + format($0, 2) } ?? "", st.assumption]
        }
        rows.append(["total", "\(p.passes)", tflop(p.flops), tflop(p.flopsBefore), format(p.ratio, 1) + "×",
                     duration(p.seconds), "", ""])
        rows.append(["worst case", "", tflop(p.worstCaseFLOPs), "", "", duration(p.worstCaseSeconds), "",
                     "every item fails; top-up cap spent"])
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.indices.map { c in
                c == 0 || c == r.count - 1 ? r[c].padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - r[c].count) + r[c]
            }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        lines.append(line(header))
        lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
        lines += rows.map(line)
        let m = p.memory
        lines.append("peak memory: \(bytes(m.peak)) = weights \(bytes(m.weights)) (mapped) + baselines "
                     + "\(bytes(m.baselines)) + residual streams \(bytes(m.streams))"
                     + (p.keepsStreams ? "" : " (over --stream-memory: not kept; each call holds a chunk of items', "
                        + "run again)")
                     + " + keys/values \(bytes(m.keysValues))"
                     + (p.keepsKeysValues ? "" : " (over the budget: not kept; suffix runs hold a chunk of "
                        + "items' at a time, run again)")
                     + " + activations \(bytes(m.activations)) (\(p.calibration.workers) batches side by side)")
        let c = p.calibration
        lines.append("calibration: \(format(c.seconds, 1)) s on \(c.workers) workers, batches of \(c.rows) rows"
                     + (c.productRows != c.rows ? " (products: \(c.productRows))" : "") + ": "
                     + "\(format(c.secondsPerRow * 1e6, 2)) µs per row·layer, "
                     + "\(format(c.secondsPerPair * 1e9, 3)) ns "
                     + "per attention pair·layer, \(format(c.secondsPerRun * 1e6, 1)) µs per run·layer, "
                     + "\(format(c.secondsPerCachedRow * 1e9, 1)) ns per cached row·layer")
        if let pilot = p.pilotSeconds {
            lines.append("pilot: \(format(pilot, 1)) s on the model itself: each stage's prediction scaled by "
                         + "measured / predicted on a few of its own passes (the pilot column)")
        } else {
            lines.append("no pilot (no weights or tokenizer here): times from the calibration alone; read them as "
                         + "±50%")
        }
        lines.append("\"before\": every pass over the whole prompt from layer 0 (no resume, suffix or shared prefix)")
        return lines.joined(separator: "\n")
    }

    static func format(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

    static func tflop(_ f: Double) -> String {
        let t = f / 1e12
        return t >= 100 ? format(t, 0) : t >= 1 ? format(t, 1) : format(t, 4)
    }

    static func duration(_ s: Double) -> String {
        s >= 86_400 ? format(s / 86_400, 1) + " d" : s >= 3_600 ? format(s / 3_600, 1) + " h"
            : s >= 60 ? format(s / 60, 1) + " min" : format(s, 1) + " s"
    }

    static func bytes(_ b: Int) -> String {
        let x = Double(b)
        return x >= 1e9 ? format(x / 1e9, 1) + " GB"
            : x >= 1e6 ? format(x / 1e6, 1) + " MB" : format(x / 1e3, 1) + " kB"
    }
}

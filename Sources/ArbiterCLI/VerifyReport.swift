// The verify report: a terminal table (models side by side), JSON, and a report folder written atomically
// (report.md, report.html with the plots embedded, plots/*.png, results.json, results.h5).
import ArbiterAnalyses
import ArbiterClaims
import ArbiterFormats
import ArbiterTensor
import Foundation

enum VerifyReport {
    typealias Entry = (AnalysisResults, [ClaimResult])

    static func table(_ all: [Entry]) -> String {
        var lines: [String] = []
        for (r, _) in all {
            let f = r.following
            let mfr = ["image", "text"].map { t in
                var text = "follow-\(t) \(f.ratio[t].map(\.description) ?? "-")"
                if let e = f.thirdAnswers[t], let c = f.thirdCounts[t] {
                    text += ", third answers \(e) \(c[0])/\(c[1])"
                }
                return text
            }.joined(separator: "; ")
            lines.append("\(r.model) (\(r.modelType), \(r.layers) layers × \(r.headsPerLayer) heads) on \(r.dataset) "
                         + "(layout \(r.layout)\(r.skipped.isEmpty ? "" : ", \(r.skipped.count) items skipped")): MFR "
                         + "\(mfr); \(String(format: "%.1f", r.seconds)) s")
        }
        lines.append("")
        if all.count == 1 {
            let header = ["claim", "statistic", "CI", "threshold", "control", "n", "verdict"]
            var rows = [header]
            for c in all[0].1 {
                rows.append([c.id, f(c.statistic), c.low.isNaN ? "-" : "[\(f(c.low)), \(f(c.high))]", f(c.threshold),
                             f(c.control),
                             "\(c.samples)", c.verdict.rawValue])
            }
            lines += render(rows)
            lines.append(tally(all[0].1))
        } else {
            var rows = [["claim"] + all.map { $0.0.model }]
            for (i, spec) in Claims.all.enumerated() {
                rows.append([spec.id] + all.map { "\($0.1[i].verdict.rawValue) (\(f($0.1[i].statistic)))" })
            }
            lines += render(rows)
        }
        lines.append("")
        for (r, claims) in all {
            for c in claims { lines.append("\(all.count > 1 ? r.model + " " : "")\(c.id): \(c.detail)") }
        }
        return lines.joined(separator: "\n")
    }

    /// How many claims got each verdict; inconclusive ones are counted apart, never as holds or fails.
    static func tally(_ claims: [ClaimResult]) -> String {
        let order: [Verdict] = [.holds, .holdsDirectionally, .fails, .inconclusive]
        return order.map { v in "\(claims.filter { $0.verdict == v }.count) \(v.rawValue)" }.joined(separator: ", ")
            + " (an inconclusive claim could not be decided on these items: the reason is below)"
    }

    static func f(_ x: Double) -> String { x.isNaN ? "nan" : String(format: "%.3f", x) }

    /// The third-answer share, its CI and its counts for target `t`, as three cells separated by " | ".
    static func thirdCells(_ following: ModalityFollowingResult, _ t: String) -> String {
        guard let e = following.thirdAnswers[t], let c = following.thirdCounts[t] else { return "– | – | –" }
        return "\(f(e.value)) | [\(f(e.low)), \(f(e.high))] | \(c[0]) / \(c[1])"
    }

    static func render(_ rows: [[String]]) -> [String] {
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out: [String] = []
        for (i, row) in rows.enumerated() {
            out.append(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
                .joined(separator: "  "))
            if i == 0 { out.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        return out
    }

    struct Payload: Encodable {
        let claimsVersion: Int
        let models: [ModelPayload]
    }
    struct ModelPayload: Encodable {
        let claims: [ClaimResult]
        let results: AnalysisResults
    }

    static func jsonData(_ all: [Entry]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                      nan: "nan")
        return try encoder.encode(Payload(claimsVersion: Claims.version,
                                          models: all.map { ModelPayload(claims: $0.1, results: $0.0) }))
    }

    /// Writes the report into a staging folder beside `path`, then renames it into place (`OutputSafety`): an
    /// interrupted run never leaves a partial report under the final name, and only an earlier Arbiter report
    /// is ever replaced.
    static func write(_ all: [Entry], to path: String, inputs: [URL]) throws {
        try OutputSafety.writeFolder(path, kind: .verifyReport, option: "--out", inputs: inputs) { staging in
            try jsonData(all).write(to: staging.appendingPathComponent("results.json"))
            try writeHDF5(all, to: staging.appendingPathComponent("results.h5"))
            let plots = try ReportPlots.write(all, to: staging.appendingPathComponent("plots"))
            try markdown(all, plots: plots).write(to: staging.appendingPathComponent("report.md"), atomically: false,
                                                  encoding: .utf8)
            try html(all, plots: plots, folder: staging).write(to: staging.appendingPathComponent("report.html"),
                                                               atomically: false, encoding: .utf8)
        }
    }

    static func markdown(_ all: [Entry], plots: [(String, String)]) -> String {
        var s = "# Arbiter verify report\n\n"
        s += "Claims of *Instruction Anchors: Dissecting the Causal Dynamics of Modality Arbitration* (arXiv "
             + "2602.03677), "
        s += "specification version \(Claims.version). Verdicts: **holds** (full threshold), **holds directionally** "
             + "(weaker threshold), **fails**, "
        s += "**inconclusive** (cannot be decided on these items — too few, no failures, a NaN — and counted "
             + "as neither; "
        s += "the reason is in the claim's line).\n\n"
        for (r, claims) in all {
            s += "## \(r.model)\n\n"
            s += "- model type `\(r.modelType)`, \(r.layers) layers × \(r.headsPerLayer) heads\n"
            s += "- dataset: \(r.dataset); calibration \(r.calibrationIDs.count), held-out \(r.heldOutIDs.count) "
                 + "items; seed \(r.configuration.seed)\n"
            s += "- prompt layout `\(r.layout)` (fingerprint \(r.layoutFingerprint))\n"
            if let two = r.ranking.twoStage {
                s += "- heads ranked in two stages (`--head-ranking \(two.screen.rawValue):\(two.candidates)`): exact "
                s += "single-head ablation of the screen's first \(two.exactHeads.count) of "
                s += "\(r.layers * r.headsPerLayer) heads, the rest in the screen's order (docs/metrics.md)\n"
            }
            if r.configuration.headPositions == .afterImage {
                s += "- head interventions (ranking, blocking, α, amplification) after the image only "
                s += "(`--head-positions after-image`, an approximation of the protocol: docs/metrics.md)\n"
            }
            s += "- skipped items: \(r.skipped.count)\(r.skipped.isEmpty ? "" : " (listed below)")\n"
            s += "- analysis time \(String(format: "%.1f", r.seconds)) s\n\n"
            s += "| target | MFR | 95% CI | follows / n | third answers | 95% CI | third / n |\n"
            s += "|---|---|---|---|---|---|---|\n"
            for t in ["image", "text", "overall"] {
                if let e = r.following.ratio[t], let c = r.following.counts[t] {
                    s += "| \(t) | \(f(e.value)) | [\(f(e.low)), \(f(e.high))] | \(c[0]) / \(c[1]) | "
                    s += "\(thirdCells(r.following, t)) |\n"
                }
            }
            for (kind, e) in r.following.accuracy.sorted(by: { $0.key < $1.key }) {
                s += "| accuracy: \(kind) | \(f(e.value)) | [\(f(e.low)), \(f(e.high))] | n=\(e.count) | | | |\n"
            }
            s += "\n*Third answers*: conflict items whose top token over the whole vocabulary starts no candidate "
            s += "answer of either modality (docs/metrics.md); the binary score cannot show them.\n"
            s += "\n| claim | statistic | CI | threshold | control | n | verdict |\n|---|---|---|---|---|---|---|\n"
            for c in claims {
                s += "| \(c.id) | \(f(c.statistic)) | \(c.low.isNaN ? "–" : "[\(f(c.low)), \(f(c.high))]") | "
                     + "\(f(c.threshold)) | \(f(c.control)) | \(c.samples) | **\(c.verdict.rawValue)** |\n"
            }
            s += "\n\(tally(claims))\n\n"
            for c in claims {
                let spec = Claims.specification(c.id)!
                s += "- **\(c.id)** — \(spec.paper) *Statistic:* \(spec.statistic). *Threshold:* \(spec.threshold) "
                     + "(\(spec.thresholdSource)); directional: \(spec.directional). *Measured:* \(c.detail).\n"
            }
            s += "\n"
            if !r.skipped.isEmpty {
                s += "### Skipped items (\(r.skipped.count))\n\n"
                for item in r.skipped { s += "- \(item)\n" }
                s += "\n"
            }
        }
        if !plots.isEmpty {
            s += "## Plots\n\n"
            for (file, caption) in plots { s += "### \(caption)\n\n![\(caption)](\(file))\n\n" }
        }
        return s
    }

    static func html(_ all: [Entry], plots: [(String, String)], folder: URL) throws -> String {
        func esc(_ t: String) -> String {
            t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
        }
        var s = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Arbiter verify report</title>"
                + "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse}"
                + "td,th{border:1px solid #ccc;padding:3px 6px;font-size:14px}img{max-width:100%}</style>"
                + "</head><body>"
        s += "<h1>Arbiter verify report</h1><p>Claims of <i>Instruction Anchors</i> (arXiv 2602.03677), specification "
             + "version \(Claims.version).</p>"
        for (r, claims) in all {
            s += "<h2>\(esc(r.model))</h2><p>\(esc(r.modelType)), \(r.layers) layers × \(r.headsPerLayer) heads; "
                 + "dataset \(esc(r.dataset)); layout \(esc(r.layout)) (\(r.layoutFingerprint)); \(r.skipped.count) "
                 + "items skipped; seed \(r.configuration.seed)</p>"
            s += "<table><tr><th>target</th><th>MFR</th><th>95% CI</th><th>n</th>"
            s += "<th>third answers</th><th>95% CI</th><th>third / n</th></tr>"
            for t in ["image", "text", "overall"] { if let e = r.following.ratio[t] {
                s += "<tr><td>\(t)</td><td>\(f(e.value))</td><td>[\(f(e.low)), \(f(e.high))]</td><td>\(e.count)</td>"
                let third = thirdCells(r.following, t).replacingOccurrences(of: " | ", with: "</td><td>")
                s += "<td>\(third)</td></tr>"
            } }
            s += "</table><br><table><tr><th>claim</th><th>statistic</th><th>CI</th><th>threshold</th>"
                 + "<th>control</th><th>verdict</th><th>detail</th></tr>"
            for c in claims {
                s += "<tr><td>\(c.id)</td><td>\(f(c.statistic))</td>"
                     + "<td>\(c.low.isNaN ? "–" : "[\(f(c.low)), \(f(c.high))]")</td><td>\(f(c.threshold))</td>"
                     + "<td>\(f(c.control))</td><td><b>\(c.verdict.rawValue)</b></td><td>\(esc(c.detail))</td></tr>"
            }
            s += "</table>"
        }
        for (file, caption) in plots {
            let data = try Data(contentsOf: folder.appendingPathComponent(file))
            s += "<h3>\(esc(caption))</h3><img alt=\"\(esc(caption))\" "
                 + "src=\"data:image/png;base64,\(data.base64EncodedString())\">"
        }
        return s + "</body></html>\n"
    }

    /// results.h5: every number of results.json, flattened. Arrays of numbers become float32 datasets named by
    /// their JSON path joined with '.', arrays of estimates become `<path>.value|low|high`, strings and scalars
    /// become root attributes.
    static func writeHDF5(_ all: [Entry], to url: URL) throws {
        // An export for other tools, never read back by Arbiter: no content digests (they would need a record of
        // over a thousand entries, past what one HDF5 attribute holds).
        let writer = try HDF5Writer(url: url, contentDigests: false)
        try writer.setAttribute("claims_version", Claims.version)
        let object = try JSONSerialization.jsonObject(with: try jsonData(all))
        func number(_ v: Any) -> Double? {
            if let n = v as? NSNumber, String(cString: n.objCType) != "c" { return n.doubleValue }
            if let s = v as? String {
                return s == "nan" ? .nan : s == "inf" ? .infinity : s == "-inf" ? -.infinity : nil
            }
            return nil
        }
        func walk(_ value: Any, _ path: String) throws {
            if let dict = value as? [String: Any] {
                if let v = dict["value"].flatMap(number), let lo = dict["low"].flatMap(number),
                   let hi = dict["high"].flatMap(number), dict.count <= 4 {
                    try writer.write(path, Tensor(shape: [3], scalars: [Float(v), Float(lo), Float(hi)]))
                    return
                }
                for (k, v) in dict { try walk(v, path.isEmpty ? k : "\(path).\(k)") }
            } else if let array = value as? [Any] {
                if !array.isEmpty, array.allSatisfy({ number($0) != nil }) {
                    try writer.write(path, Tensor(shape: [array.count], scalars: array.map { Float(number($0)!) }))
                } else if !array.isEmpty, array.allSatisfy({
                    ($0 as? [String: Any])?["value"] != nil && ($0 as? [String: Any])?["low"] != nil
                }) {
                    for key in ["value", "low", "high"] {
                        try writer.write("\(path).\(key)", Tensor(shape: [array.count], scalars: array.map {
                            Float(number(($0 as! [String: Any])[key]!) ?? .nan)
                        }))
                    }
                } else {
                    for (i, v) in array.enumerated() { try walk(v, "\(path).\(i)") }
                }
            } else if let n = number(value) {
                try writer.setAttribute(path, n)
            } else if let s = value as? String {
                try writer.setAttribute(path, s)
            }
        }
        try walk(object, "")
        try writer.commit()
    }
}

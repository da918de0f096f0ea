// The fuzz suite: every case of FuzzCatalog run as a subprocess of the `arbiter` built beside the test bundle,
// in an empty working directory, with a time limit and an address-space limit. A case passes with a clean
// refusal (nonzero exit, no signal, stderr naming the file and what the case knows: tensor, field, item or
// option) or a correct success (for a mutation that keeps the meaning: exactly the unmutated base's output),
// and in both cases nothing written. A table per input kind is printed for the issue's closing note.
import Foundation
import Testing

/// Every case, built from the seeded generators (the same list on every run).
enum FuzzCatalog {
    static let all: [FuzzCase] =
        safetensors() + config() + preprocessor() + tokenizer() + png() + layout() + dataset()
        + hdf5() + options()

    static func cases(_ kind: InputKind) -> [FuzzCase] { all.filter { $0.kind == kind } }
}

enum FuzzFailure: String, CaseIterable, Sendable {
    case signal
    case timeout
    case unnamed = "no name"
    case wrote = "wrote files"
    case wrongSuccess = "wrong success"
    case wrongRefusal = "refused valid"
    case setup = "setup error"
}

struct FuzzOutcome: Sendable {
    enum Verdict: Equatable, Sendable {
        case refused, succeeded
        case failed(FuzzFailure)
    }

    let fuzzCase: FuzzCase
    let verdict: Verdict
    /// What went wrong, for the issue recorded.
    let detail: String
}

enum FuzzRunner {
    /// The limits every case runs under: 1 GiB of address space (the tiny models need ~300 MB; an allocation
    /// driven by a hostile size fails instead of taking the machine), and the resource guard told half of it.
    static func limits(_ ws: Workspace) -> ResourceLimits {
        ResourceLimits(
            addressSpace: 1 << 30,
            environment: [
                "ARBITER_MEMORY_LIMIT_BYTES": String(1 << 29), "OPENBLAS_NUM_THREADS": "1", "TMPDIR": ws.tmp.path,
            ])
    }

    static var workers: Int { ProcessInfo.processInfo.environment["ARBITER_FUZZ_WORKERS"].flatMap(Int.init) ?? 2 }

    /// stdout with the case's folder written as <ws> (the baseline ran in another folder).
    static func normalized(_ text: String, _ ws: Workspace) -> String {
        text.replacingOccurrences(of: ws.root.path, with: "<ws>")
    }

    /// Runs the unmutated base: its output is what a meaning-keeping mutation must reproduce.
    static func baseline(_ base: Base) throws -> (CLIResult, String) {
        let ws = try Workspace()
        let arguments = try base.setup(ws)
        let r = try CLI.execute(arguments, in: ws.cwd, timeout: 60, limits: limits(ws))
        return (r, normalized(r.stdout, ws))
    }

    static func run(_ c: FuzzCase, baseline: String?) -> FuzzOutcome {
        func outcome(_ verdict: FuzzOutcome.Verdict, _ detail: String) -> FuzzOutcome {
            FuzzOutcome(fuzzCase: c, verdict: verdict, detail: detail)
        }
        let ws: Workspace
        let arguments: [String]
        let before: [String: String]
        let r: CLIResult
        do {
            ws = try Workspace()
            arguments = try c.prepare(ws)
            before = try ws.snapshot()
            r = try CLI.execute(arguments, in: ws.cwd, timeout: c.timeout, limits: limits(ws))
        } catch {
            return outcome(.failed(.setup), "\(error)")
        }
        let shown =
            "arbiter "
            + arguments.map { $0.count > 80 ? String($0.prefix(60)) + "…(\($0.count) chars)" : $0 }
            .joined(separator: " ").replacingOccurrences(of: ws.root.path, with: "<ws>")
        let tail = "\(shown)\n  → \(r)"
        if r.timedOut { return outcome(.failed(.timeout), "killed after \(c.timeout) s: \(tail)") }
        if r.signalled { return outcome(.failed(.signal), "signal \(r.status): \(tail)") }
        let after = (try? ws.snapshot()) ?? [:]
        let changed = Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted()
        if !changed.isEmpty { return outcome(.failed(.wrote), "changed \(changed.prefix(5)): \(tail)") }
        let e = c.expectation
        if r.status == 0 {
            switch e.success {
            case .none:
                return outcome(
                    .failed(.wrongSuccess), "exit 0 on a bad input: \(tail)\n  stdout: \(r.stdout.suffix(400))")
            case .any: return outcome(.succeeded, "")
            case .baseline, .baselineTop:
                var got = normalized(r.stdout, ws)
                var want = baseline ?? ""
                if e.success == .baselineTop {
                    let top = { (s: String) in s.split(separator: "\n").filter { $0.hasPrefix("next-token logits") } }
                    (got, want) = (top(got).joined(separator: "\n"), top(want).joined(separator: "\n"))
                }
                return !want.isEmpty && got == want
                    ? outcome(.succeeded, "")
                    : outcome(
                        .failed(.wrongSuccess),
                        "exit 0 with another answer: \(tail)\n  stdout: \(got.suffix(400))\n  "
                            + "baseline: \((baseline ?? "(none)").suffix(400))")
            }
        }
        if e.mismatchReport && r.stdout.contains("FAIL") && r.status == 1 { return outcome(.refused, "") }
        guard e.refusal else { return outcome(.failed(.wrongRefusal), "refused a meaning-keeping change: \(tail)") }
        let missing = e.naming.filter { alternatives in
            !alternatives.split(separator: "|").contains { mentions(r.stderr, String($0)) }
        }
        if !missing.isEmpty { return outcome(.failed(.unnamed), "message lacks \(missing): \(tail)") }
        return outcome(.refused, "")
    }

    /// Whether `text` names `name` as a whole: not as the tail of a longer name (`config.json` is not named
    /// by `preprocessor_config.json`).
    static func mentions(_ text: String, _ name: String) -> Bool {
        var from = text.startIndex
        while let r = text.range(of: name, range: from..<text.endIndex) {
            guard r.lowerBound > text.startIndex else { return true }
            let before = text[text.index(before: r.lowerBound)]
            if !(before.isLetter || before.isNumber || before == "_") { return true }
            from = r.upperBound
        }
        return false
    }

    /// Runs `cases` on `workers` threads (each case is a subprocess; the threads only wait for them).
    static func runAll(_ cases: [FuzzCase], baselines: [String: String]) -> [FuzzOutcome] {
        let queue = WorkQueue(cases.count)
        DispatchQueue.concurrentPerform(iterations: max(1, workers)) { _ in
            while let i = queue.take() { queue.finish(i, run(cases[i], baseline: baselines[cases[i].base.id])) }
        }
        return queue.outcomes.map { $0! }
    }

    /// Hands out case indices and collects outcomes under a lock.
    final class WorkQueue: @unchecked Sendable {
        private let lock = NSLock()
        private var next = 0
        private let count: Int
        private(set) var outcomes: [FuzzOutcome?]

        init(_ count: Int) {
            self.count = count
            outcomes = Array(repeating: nil, count: count)
        }

        func take() -> Int? {
            lock.withLock {
                guard next < count else { return nil }
                next += 1
                return next - 1
            }
        }

        func finish(_ i: Int, _ outcome: FuzzOutcome) { lock.withLock { outcomes[i] = outcome } }
    }
}

/// The per-kind rows, printed as one table when the last kind has run.
actor FuzzLedger {
    static let shared = FuzzLedger()
    private var rows: [InputKind: ([FuzzOutcome], Double)] = [:]

    func add(_ kind: InputKind, _ outcomes: [FuzzOutcome], seconds: Double) -> String? {
        rows[kind] = (outcomes, seconds)
        return rows.count == InputKind.allCases.count
            ? FuzzLedger.table(InputKind.allCases.map { ($0, rows[$0]!) }) : nil
    }

    static func table(_ rows: [(InputKind, ([FuzzOutcome], Double))]) -> String {
        let failures: [FuzzFailure] = [.signal, .timeout, .unnamed, .wrote, .wrongSuccess, .wrongRefusal, .setup]
        let header = ["input kind", "cases", "refused", "succeeded"] + failures.map(\.rawValue) + ["known", "seconds"]
        func row(_ name: String, _ outcomes: [FuzzOutcome], _ seconds: Double) -> [String] {
            let count = { (v: FuzzOutcome.Verdict) in String(outcomes.filter { $0.verdict == v }.count) }
            let known = outcomes.filter { FuzzKnownIssues.area(of: $0.fuzzCase.id) != nil }.count
            return [name, String(outcomes.count), count(.refused), count(.succeeded)]
                + failures.map { count(.failed($0)) }
                + [String(known), String(format: "%.0f", seconds)]
        }
        var lines = rows.map { row($0.0.rawValue, $0.1.0, $0.1.1) }
        lines.append(row("total", rows.flatMap { $0.1.0 }, rows.map { $0.1.1 }.reduce(0, +)))
        let all = [header] + lines
        let widths = header.indices.map { i in all.map { $0[i].count }.max()! }
        let format = { (cells: [String]) in
            "| "
                + cells.enumerated().map { i, c in
                    i == 0
                        ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[i] - c.count) + c
                }.joined(separator: " | ") + " |"
        }
        let rule =
            "|"
            + widths.enumerated().map { i, w in
                i == 0
                    ? String(repeating: "-", count: w + 2)
                    : String(repeating: "-", count: w + 1) + ":"
            }.joined(separator: "|") + "|"
        return ([format(header), rule] + lines.map(format)).joined(separator: "\n")
    }
}

@Suite("Fuzz: malformed inputs of every kind, run as subprocesses", .serialized)
struct FuzzTests {
    @Test("the case list is deterministic, large and names only cases that exist")
    func catalog() {
        let ids = FuzzCatalog.all.map(\.id)
        #expect(ids.count >= 500, "\(ids.count) cases")
        #expect(
            Set(ids).count == ids.count,
            "duplicate ids: \(Dictionary(grouping: ids, by: { $0 }).filter { $1.count > 1 }.keys)")
        for kind in InputKind.allCases { #expect(FuzzCatalog.cases(kind).count >= 20, "\(kind)") }
        #expect(FuzzCatalog.all.map(\.id) == ids)
        let stale = FuzzKnownIssues.cases.keys.filter { !Set(ids).contains($0) }
        #expect(stale.isEmpty, "FuzzKnownIssues names cases that do not exist: \(stale.sorted())")
    }

    @Test(
        "every case: a clean refusal naming the file, or a correct success; no signal, hang or file written",
        arguments: InputKind.allCases)
    func kind(_ kind: InputKind) async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: CLI.executable.path),
            "no arbiter executable at \(CLI.executable.path): build it first (make test does)")
        let cases = FuzzCatalog.cases(kind)
        let start = Date()
        // Baselines first: every base must run cleanly unmutated, else its cases prove nothing.
        var baselines: [String: String] = [:]
        for c in cases where [.baseline, .baselineTop].contains(c.expectation.success) && baselines[c.base.id] == nil {
            let (r, stdout) = try FuzzRunner.baseline(c.base)
            #expect(r.status == 0 && !r.signalled && !r.timedOut, "\(kind) base \(c.base.id) fails unmutated: \(r)")
            baselines[c.base.id] = stdout
        }
        let known = baselines
        let outcomes = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: FuzzRunner.runAll(cases, baselines: known)) }
        }
        let seconds = Date().timeIntervalSince(start)
        print(FuzzLedger.table([(kind, (outcomes, seconds))]))
        if let table = await FuzzLedger.shared.add(kind, outcomes, seconds: seconds) {
            let workers = FuzzRunner.workers
            print("Fuzz suite, every input kind (\(FuzzCatalog.all.count) cases, \(workers) workers):\n\(table)")
        }
        for o in outcomes {
            let id = o.fuzzCase.id
            let area = FuzzKnownIssues.area(of: id)
            guard case .failed(let mode) = o.verdict else {
                if let area {
                    Issue.record("\(id) passes now: remove it from FuzzKnownIssues (\(area.rawValue))")
                }
                continue
            }
            let message = Comment(rawValue: "\(id): \(mode.rawValue): \(o.detail)")
            if let area {
                withKnownIssue("\(area.rawValue): \(area.owner)") { Issue.record(message) }
            } else {
                Issue.record(message)
            }
        }
    }
}

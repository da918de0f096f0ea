// Runs the `arbiter` executable built beside the test bundle as a subprocess, with a time limit, and collects
// what it printed, its exit status and whether a signal ended it.
import Foundation
import Testing

enum Repository {
    /// The package root (two levels above this file's folder).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static func model(_ id: String) -> URL { root.appendingPathComponent("GoldenData/models/\(id)") }
}

/// A temporary folder removed when the value is deinitialized.
final class TemporaryFolder {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// Writes a user's file (`contents` defaults to its own name).
    @discardableResult
    func plant(_ name: String, _ contents: String? = nil) throws -> URL {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((contents ?? "user file \(name)").utf8).write(to: file)
        return file
    }

    /// Every entry below the folder with its contents (files) or "/" (folders): a snapshot to compare.
    func snapshot() throws -> [String: String] {
        var out: [String: String] = [:]
        let e = FileManager.default.enumerator(atPath: url.path)
        while let name = e?.nextObject() as? String {
            let p = url.appendingPathComponent(name).path
            out[name] = Self.fingerprint(p)
        }
        return out
    }

    /// "/" for a folder, size and hash for a regular file, the type for anything else (a named pipe is never
    /// opened: reading it would block).
    static func fingerprint(_ path: String) -> String {
        let type = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
        switch type {
        case .typeDirectory?: return "/"
        case .typeRegular?:
            let data = try? Data(contentsOf: URL(fileURLWithPath: path))
            return data.map { "\($0.count) bytes \($0.hashValue)" } ?? "?"
        case let other?: return other.rawValue
        case nil: return "?"
        }
    }
}

struct CLIResult: CustomStringConvertible {
    let status: Int32
    let signalled: Bool
    let stdout: String
    let stderr: String
    /// Both streams, standard output first.
    var output: String { stdout + stderr }
    /// Killed at the time limit.
    var timedOut = false
    var description: String {
        let how = (signalled ? " (signal)" : "") + (timedOut ? " (timed out)" : "")
        return "status \(status)\(how); stderr: \(stderr.suffix(600))"
    }
}

/// Limits a subprocess runs under besides its time limit.
struct ResourceLimits: Sendable {
    /// Address space in bytes (`ulimit -v`): an allocation beyond it fails inside the process.
    var addressSpace: Int
    /// Extra environment (e.g. ARBITER_MEMORY_LIMIT_BYTES, so the resource guard refuses before the kernel does).
    var environment: [String: String] = [:]
}

enum CLI {
    /// The `arbiter` executable built beside the test bundle (`make test` builds it first).
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("arbiter")
    }

    /// Runs `arbiter arguments…` in `directory`, killed after `timeout` seconds (a hang is a failure).
    static func run(_ arguments: [String], in directory: URL? = nil, timeout: Double = 120,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        try #require(FileManager.default.isExecutableFile(atPath: executable.path),
                     "no arbiter executable at \(executable.path): build it first (make test does)",
                     sourceLocation: sourceLocation)
        let r = try execute(arguments, in: directory, timeout: timeout)
        #expect(!r.timedOut, "arbiter \(arguments.joined(separator: " ")) ran over \(timeout) s",
                sourceLocation: sourceLocation)
        return r
    }

    /// Runs `arbiter arguments…` and reports what happened without recording issues (callable from any thread):
    /// killed after `timeout` seconds, under `limits` when given (through `/bin/sh -c 'ulimit -v …; exec …'`).
    static func execute(_ arguments: [String], in directory: URL? = nil, timeout: Double = 120,
                        limits: ResourceLimits? = nil) throws -> CLIResult {
        // Output goes to files (no pipe can fill up and block the process).
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-cli-out-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("stdout"), errURL = scratch.appendingPathComponent("stderr")
        var command = executable.path, commandArguments = arguments
        if let limits {
            let kibibytes = max(1, limits.addressSpace / 1024)
            command = "/bin/sh"
            commandArguments = ["-c", "ulimit -v \(kibibytes) && exec \"$0\" \"$@\"", executable.path] + arguments
        }
        let r = try Subprocess.run(command, commandArguments, in: directory, environment: limits?.environment ?? [:],
                                   stdout: outURL, stderr: errURL, timeout: timeout)
        let outData = try Data(contentsOf: outURL), errData = try Data(contentsOf: errURL)
        return CLIResult(status: r.status, signalled: r.signal != nil && !r.timedOut,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self), timedOut: r.timedOut)
    }

    /// Runs and expects a clean refusal: a nonzero exit without a signal, and `fragments` in the message.
    @discardableResult
    static func refuses(_ arguments: [String], in directory: URL? = nil, _ fragments: String...,
                        sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        let r = try run(arguments, in: directory, sourceLocation: sourceLocation)
        #expect(r.status != 0 && !r.signalled, "\(arguments): \(r)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(r.stderr.contains(fragment), "\(arguments): want '\(fragment)' in: \(r)", sourceLocation: sourceLocation)
        }
        return r
    }
}

/// Starting a process with posix_spawn and waiting for it with waitpid. Foundation's `Process` is not used:
/// launched from several test threads at once it crashed the test process (SIGSEGV in memcpy, once in two full
/// runs), and it needs a run-loop thread per process.
enum Subprocess {
    struct Outcome {
        /// The exit status, or 128 + the signal that ended the process.
        let status: Int32
        let signal: Int32?
        let timedOut: Bool
    }

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `executable arguments…` in `directory` (through `env -C`), with standard input from /dev/null and
    /// standard output and error written to the given files; killed (SIGKILL) after `timeout` seconds.
    static func run(_ executable: String, _ arguments: [String], in directory: URL? = nil,
                    environment extra: [String: String] = [:], stdout: URL, stderr: URL,
                    timeout: Double) throws -> Outcome {
        let argv0 = directory == nil ? executable : "/usr/bin/env"
        let all = directory.map { ["/usr/bin/env", "-C", $0.path, executable] + arguments } ?? [executable] + arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let cArguments = all.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cEnvironment.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, argv0, &actions, nil, cArguments, cEnvironment)
        guard spawned == 0 else {
            throw SpawnError(description: "cannot start \(argv0): \(String(cString: strerror(spawned)))")
        }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var timedOut = false
        var pause: useconds_t = 1_000   // short first: most runs end within milliseconds
        while true {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { break }
            if done < 0 && errno != EINTR { throw SpawnError(description: "waitpid: \(String(cString: strerror(errno)))") }
            if Date() > deadline && !timedOut {
                timedOut = true
                kill(pid, SIGKILL)
            }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        // WIFEXITED / WTERMSIG, spelled out (the C macros are not imported).
        let signal = status & 0x7f
        if signal == 0 { return Outcome(status: (status >> 8) & 0xff, signal: nil, timedOut: timedOut) }
        return Outcome(status: 128 + signal, signal: signal, timedOut: timedOut)
    }
}

extension Subprocess {
    /// Runs `executable arguments…` in `directory` with `environment` added to this process's, killed after
    /// `timeout` seconds (a hang is recorded as an issue); what it printed and how it ended.
    static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil,
                    environment: [String: String] = [:], timeout: Double = 120,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("stdout"), errURL = scratch.appendingPathComponent("stderr")
        let r = try run(executable.path, arguments, in: directory, environment: environment, stdout: outURL,
                        stderr: errURL, timeout: timeout)
        #expect(!r.timedOut, "\(executable.lastPathComponent) \(arguments.joined(separator: " ")) ran over \(timeout) s",
                sourceLocation: sourceLocation)
        return CLIResult(status: r.status, signalled: r.signal != nil && !r.timedOut,
                         stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                         stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self), timedOut: r.timedOut)
    }
}

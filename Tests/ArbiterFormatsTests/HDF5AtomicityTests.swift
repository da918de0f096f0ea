// HDF5Writer writes to a temporary file and renames it into place only on commit().
import ArbiterTensor
import Foundation
import Testing
@testable import ArbiterFormats

@Suite("HDF5 writer atomicity")
struct HDF5AtomicityTests {
    @Test("a writer dropped without commit leaves no file and no temporary file")
    func droppedWithoutCommit() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("dropped.h5")
        do {
            let writer = try HDF5Writer(url: url)
            try writer.write("t", HDF5Fixtures.ramp([4, 4]))
            try writer.setAttribute("format_version", 1)
            #expect(FileManager.default.fileExists(atPath: writer.temporaryURL.path))
            #expect(writer.temporaryURL.deletingLastPathComponent().path == folder.url.path)
            #expect(!FileManager.default.fileExists(atPath: url.path))
        }
        #expect(try folder.contents() == [])
    }

    @Test("an existing file is untouched by an uncommitted writer and replaced by a committed one")
    func existingFile() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("existing.h5")
        let original = Data("not even HDF5, but it must survive".utf8)
        try original.write(to: url)
        do {
            let writer = try HDF5Writer(url: url)
            try writer.write("t", HDF5Fixtures.ramp([2]))
        }
        #expect(try Data(contentsOf: url) == original)
        #expect(try folder.contents() == ["existing.h5"])

        let writer = try HDF5Writer(url: url)
        try writer.write("t", HDF5Fixtures.ramp([2]))
        #expect(try Data(contentsOf: url) == original)  // still the old file before commit
        try writer.commit()
        #expect(try HDF5Reader(url: url).readFloat32("t") == HDF5Fixtures.ramp([2]))
        #expect(try folder.contents() == ["existing.h5"])
    }

    @Test("the same content written twice gives the same bytes (no timestamps)")
    func deterministic() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let first = try HDF5Fixtures.writeGolden(to: folder.file("first.h5"))
        Thread.sleep(forTimeInterval: 1.1)  // a timestamp would now differ
        let second = try HDF5Fixtures.writeGolden(to: folder.file("second.h5"))
        #expect(first == second)
    }

    @Test("a failed write does not corrupt the committed file of an earlier writer")
    func failedSecondWriter() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("stable.h5")
        try HDF5Fixtures.writeGolden(to: url)
        let before = try Data(contentsOf: url)
        do {
            let writer = try HDF5Writer(url: url)
            try writer.write("x", HDF5Fixtures.ramp([2]))
            #expect(throws: FormatError.self) { try writer.write("x", HDF5Fixtures.ramp([2])) }
            // the caller gives up: no commit
        }
        #expect(try Data(contentsOf: url) == before)
        #expect(try folder.contents() == ["stable.h5"])
    }
}

@Suite("HDF5 files and spawned processes")
struct HDF5CloseOnExecTests {
    /// Starts `/bin/sleep` with posix_spawn, which passes on every descriptor not marked close-on-exec.
    private func spawnSleeper() throws -> pid_t {
        var pid: pid_t = 0
        let words: [String] = ["/bin/sleep", "3"]
        let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { arguments.forEach { free($0) } }
        guard posix_spawn(&pid, "/bin/sleep", nil, nil, arguments, environ) == 0 else {
            throw FormatError(.unexpected, file: "/bin/sleep", "cannot spawn")
        }
        return pid
    }

    /// Reads the ramp of 3 a test committed at `url`, then replaces it by a ramp of 4 and reads that.
    private func readAndReplace(_ url: URL) throws {
        #expect(try HDF5Reader(url: url).readFloat32("t") == HDF5Fixtures.ramp([3]))
        let replacing = try HDF5Writer(url: url)
        try replacing.write("t", HDF5Fixtures.ramp([4]))
        try replacing.commit()
        #expect(try HDF5Reader(url: url).readFloat32("t") == HDF5Fixtures.ramp([4]))
    }

    private func closeOnExec(_ descriptor: Int32?) -> Bool {
        guard let descriptor, descriptor >= 0 else { return false }
        return fcntl(descriptor, F_GETFD) & FD_CLOEXEC != 0
    }

    // A CI run failed on "unable to lock file, errno = 11" reopening a just-written file: a subprocess that
    // another test spawned while the file was open had inherited HDF5's descriptor and its flock() lock.
    @Test("a process spawned while a file is written or read inherits neither it nor its lock")
    func spawnedProcess() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("locked.h5")
        let writer = try HDF5Writer(url: url)
        #expect(closeOnExec(writer.descriptor))
        try writer.write("t", HDF5Fixtures.ramp([3]))
        let sleeper = try spawnSleeper()
        defer { kill(sleeper, SIGKILL); var status: Int32 = 0; waitpid(sleeper, &status, 0) }
        try writer.commit()
        // The next open threw "unable to lock file" while the sleeper held the writer's lock.
        #expect(closeOnExec(try HDF5Reader(url: url).descriptor))
        try readAndReplace(url)
    }

    // The CI failed again after close-on-exec alone: a process spawned in the instant between HDF5's open()
    // and the fcntl (stretched by a loaded host) still inherited a writer's descriptor, and with it the lock.
    @Test("a copy of a writer's descriptor that outlives it (as an inherited one does) locks nothing")
    func survivingWriterDescriptor() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("survived.h5")
        let writer = try HDF5Writer(url: url)
        try writer.write("t", HDF5Fixtures.ramp([3]))
        let copy = dup(try #require(writer.descriptor))  // the same open file description, as a child holds it
        #expect(copy >= 0)
        defer { close(copy) }
        try writer.commit()
        try readAndReplace(url)
    }

    @Test("a file another process holds locked is refused as locked, not as corrupt")
    func lockedFile() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("held.h5")
        try HDF5Fixtures.writeGolden(to: url)
        let holder = open(url.path, O_RDWR | O_CLOEXEC)
        #expect(holder >= 0)
        defer { close(holder) }
        #expect(flock(holder, LOCK_EX) == 0)  // as HDF5 does while it writes the file
        let error = expectHDF5Error(naming: url) { try HDF5Reader(url: url) }
        #expect(error?.kind == .unreadable && error?.problem.contains("another process holds HDF5's lock") == true,
                "\(String(describing: error))")
        flock(holder, LOCK_UN)
        #expect(try HDF5Reader(url: url).datasetNames().isEmpty == false)
    }
}

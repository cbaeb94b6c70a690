/// Everything that can go wrong reading corpora, user data and partition manifests.
/// Each description says what was wrong and what to do.
public enum DataError: Error, Equatable, CustomStringConvertible {
    /// A built-in domain's files are not on disk.
    case missingCorpus(domain: String, path: String, debianPackage: String)
    /// A helper program (gzip, bible) failed.
    case extractionFailed(domain: String, command: String, reason: String)
    /// A JSONL line is not a JSON object with a string `text` field. `line` is 1-based.
    case malformedJSONL(file: String, line: Int, reason: String)
    case unreadableFile(path: String, reason: String)
    case emptyInput(String)
    case invalidPartition(String)
    case malformedManifest(path: String, reason: String)
    case unknownDevice(Int, deviceCount: Int)
    case unknownDomain(String, known: [String])

    public var description: String {
        switch self {
        case let .missingCorpus(domain, path, package):
            return "built-in domain '\(domain)' is missing: \(path) not found. "
                + "Install the Debian package '\(package)' (sudo apt-get install \(package)) or run scripts/bootstrap."
        case let .extractionFailed(domain, command, reason):
            return "extracting domain '\(domain)' with `\(command)` failed: \(reason)"
        case let .malformedJSONL(file, line, reason):
            return "\(file):\(line): malformed JSONL line: \(reason). Each line must be a JSON object "
                + "with a string \"text\" field (optional string \"domain\")."
        case let .unreadableFile(path, reason):
            return "cannot read \(path): \(reason)"
        case let .emptyInput(what):
            return "no text found: \(what)"
        case let .invalidPartition(reason):
            return "cannot partition: \(reason)"
        case let .malformedManifest(path, reason):
            return "partition manifest \(path) is malformed: \(reason). Re-run `fi data prepare`."
        case let .unknownDevice(device, count):
            return "device \(device) is not in the manifest (it has devices 0..<\(count))"
        case let .unknownDomain(domain, known):
            return "domain '\(domain)' is not in the manifest (known: \(known.joined(separator: ", ")))"
        }
    }
}

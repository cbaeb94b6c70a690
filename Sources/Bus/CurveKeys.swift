import CZMQ
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// CURVE keys (ZeroMQ RFC 26) and their files. A key pair is written as two one-line files holding the
// 40-character Z85 text of a 32-byte key: `NAME.key` (public, shared freely) and `NAME.secret` (mode 0600).

/// A 32-byte Curve25519 key, public or secret.
public struct CurveKey: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Z85 text length of a 32-byte key.
    public static let z85Length = 40
    static let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)

    /// Exactly 32 bytes (ZAP hands the client's key over in this form).
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// Parses 40 Z85 characters; the error says what is wrong (`file` only goes into the message).
    public init(z85 text: String, file: String = "the key") throws(CurveKeyError) {
        let chars = Array(text.utf8)
        guard chars.count == Self.z85Length else {
            throw .malformed(file: file, reason: "expected \(Self.z85Length) Z85 characters, found \(chars.count)")
        }
        if let bad = chars.firstIndex(where: { !Self.alphabet.contains($0) }) {
            throw .malformed(file: file, reason: "character \(bad + 1) ('\(Character(Unicode.Scalar(chars[bad])))') is not Z85")
        }
        var out = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&out, text) != nil else { throw .malformed(file: file, reason: "not a Z85-encoded key") }
        bytes = out
    }

    public var z85: String {
        var text = [CChar](repeating: 0, count: Self.z85Length + 1)
        _ = zmq_z85_encode(&text, bytes, bytes.count)
        return String(decoding: text.prefix(Self.z85Length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { z85 }
}

/// A CURVE identity: the secret key and the public key derived from it.
public struct CurveKeyPair: Sendable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    /// A fresh random pair (libzmq with libsodium).
    public static func generate() throws(CurveKeyError) -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: CurveKey.z85Length + 1)
        var sec = [CChar](repeating: 0, count: CurveKey.z85Length + 1)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw .curveUnavailable }
        return try CurveKeyPair(secret: CurveKey(z85: String(cString: sec)))
    }

    /// The pair of a secret key (the public key is derived, so the two cannot disagree).
    public init(secret: CurveKey) throws(CurveKeyError) {
        var pub = [CChar](repeating: 0, count: CurveKey.z85Length + 1)
        guard zmq_curve_public(&pub, secret.z85) == 0 else { throw .curveUnavailable }
        publicKey = try CurveKey(z85: String(cString: pub))
        secretKey = secret
    }
}

/// A key file or folder that cannot be used; every case names the file.
public enum CurveKeyError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case malformed(file: String, reason: String)
    /// A secret key file that other users may read (or write).
    case secretTooOpen(file: String, mode: Int)
    case notADirectory(path: String)
    case emptyAllowList(directory: String)
    case exists(file: String)
    case unwritable(file: String, reason: String)
    /// libzmq was built without CURVE (no libsodium/tweetnacl).
    case curveUnavailable

    public var description: String {
        switch self {
        case .unreadable(let f, let r): "CURVE key file \(f): cannot read it (\(r))"
        case .malformed(let f, let r): "CURVE key file \(f): \(r); write one line of 40 Z85 characters (fi keys generate does)"
        case .secretTooOpen(let f, let m):
            "CURVE secret key file \(f) has mode \(String(m, radix: 8)): other users may read it; chmod 600 \(f)"
        case .notADirectory(let p): "CURVE allow-list \(p) is not a folder: give a folder of NAME.key public key files"
        case .emptyAllowList(let d): "CURVE allow-list \(d) holds no NAME.key public key file: nobody could connect"
        case .exists(let f): "\(f) exists: pass --if-missing to keep existing keys, or remove it first"
        case .unwritable(let f, let r): "cannot write \(f) (\(r))"
        case .curveUnavailable: "this libzmq has no CURVE support (zmq_has(\"curve\") is false): install a libzmq built with libsodium"
        }
    }
}

/// Reading and writing key files.
public enum CurveKeyFile {
    public static let publicExtension = "key"
    public static let secretExtension = "secret"

    /// Writes `DIR/NAME.key` (0644) and `DIR/NAME.secret` (0600); an existing pair is an error unless `keepExisting`,
    /// which returns that pair instead.
    @discardableResult
    public static func generate(name: String, in directory: URL, keepExisting: Bool = false) throws(CurveKeyError) -> CurveKeyPair {
        let pub = directory.appendingPathComponent("\(name).\(publicExtension)")
        let sec = directory.appendingPathComponent("\(name).\(secretExtension)")
        let fm = FileManager.default
        if fm.fileExists(atPath: sec.path) || fm.fileExists(atPath: pub.path) {
            guard keepExisting else { throw .exists(file: fm.fileExists(atPath: sec.path) ? sec.path : pub.path) }
            let pair = try CurveKeyPair(secret: readSecret(sec.path))
            guard try readPublic(pub.path) == pair.publicKey else {
                throw .malformed(file: pub.path, reason: "it is not the public key of \(sec.path)")
            }
            return pair
        }
        do { try fm.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw .unwritable(file: directory.path, reason: error.localizedDescription)
        }
        let pair = try CurveKeyPair.generate()
        try write(pair.secretKey, to: sec.path, mode: 0o600)
        try write(pair.publicKey, to: pub.path, mode: 0o644)
        return pair
    }

    /// Creates the file with `mode` from the start, so a secret is never readable by others, even briefly.
    static func write(_ key: CurveKey, to path: String, mode: mode_t) throws(CurveKeyError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard fd >= 0 else { throw .unwritable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let line = Array((key.z85 + "\n").utf8)
        guard systemWrite(fd, line, line.count) == line.count, fchmod(fd, mode) == 0 else {
            throw .unwritable(file: path, reason: String(cString: strerror(errno)))
        }
    }

    public static func readPublic(_ path: String) throws(CurveKeyError) -> CurveKey {
        try CurveKey(z85: keyLine(path), file: path)
    }

    /// A secret key file must not be open to group or others (like ssh's private keys).
    public static func readSecret(_ path: String) throws(CurveKeyError) -> CurveKey {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        let mode = Int(st.st_mode & 0o777)
        guard mode & 0o077 == 0 else { throw .secretTooOpen(file: path, mode: mode) }
        return try CurveKey(z85: keyLine(path), file: path)
    }

    /// Every `NAME.key` in `directory`, as key -> NAME (other files, secrets among them, are ignored).
    public static func readAllowList(_ directory: String) throws(CurveKeyError) -> [CurveKey: String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) else {
            throw .unreadable(file: directory, reason: "no such folder")
        }
        guard isDir.boolValue else { throw .notADirectory(path: directory) }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw .unreadable(file: directory, reason: error.localizedDescription)
        }
        var keys: [CurveKey: String] = [:]
        for name in names.sorted() where name.hasSuffix("." + publicExtension) {
            let key = try readPublic(URL(fileURLWithPath: directory).appendingPathComponent(name).path)
            keys[key] = keys[key] ?? String(name.dropLast(publicExtension.count + 1))
        }
        guard !keys.isEmpty else { throw .emptyAllowList(directory: directory) }
        return keys
    }

    /// The one key line: surrounding whitespace and a trailing newline are fine, anything else is not.
    static func keyLine(_ path: String) throws(CurveKeyError) -> String {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadable(file: path, reason: (error as NSError).localizedFailureReason ?? error.localizedDescription)
        }
        guard data.count <= 4096 else { throw .malformed(file: path, reason: "\(data.count) bytes is far too long for a key") }
        guard let text = String(data: data, encoding: .utf8) else { throw .malformed(file: path, reason: "not UTF-8 text") }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard lines.count == 1 else { throw .malformed(file: path, reason: "expected one line, found \(lines.count)") }
        return lines[0]
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

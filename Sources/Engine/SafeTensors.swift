import Foundation

/// safetensors files: 8-byte little-endian header length, JSON header
/// {name: {dtype, shape, data_offsets: [begin, end]}}, then the raw little-endian data.
public enum SafeTensors {
    /// Reads every tensor (F32, F16, BF16) as Float, keyed by name.
    public static func read(_ url: URL) throws(EngineError) -> [String: NamedTensor] {
        let file = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw .io(file: file, detail: "\(error.localizedDescription)") }
        return try decode(data, file: file)
    }

    public static func decode(_ data: Data, file: String) throws(EngineError) -> [String: NamedTensor] {
        guard data.count >= 8 else { throw .truncatedFile(file: file, detail: "\(data.count) bytes, the 8-byte header length is missing") }
        let bytes = [UInt8](data)
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(bytes.count - 8) else {
            throw .truncatedFile(file: file, detail: "header claims \(n) bytes, only \(bytes.count - 8) follow")
        }
        let headerEnd = 8 + Int(n)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])) } catch {
            throw .badHeader(file: file, detail: "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw .badHeader(file: file, detail: "header is not a JSON object") }
        let dataCount = bytes.count - headerEnd
        var out: [String: NamedTensor] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = (entry["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offs = (entry["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }), offs.count == 2
            else { throw .badHeader(file: file, detail: "entry '\(name)' needs dtype, shape and data_offsets [begin, end]") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw .badHeader(file: file, detail: "tensor '\(name)' has a negative dimension") }
            let width: Int
            switch dtype {
            case "F32": width = 4
            case "F16", "BF16": width = 2
            default: throw .unsupportedDType(name: name, dtype: dtype)
            }
            let count = shape.reduce(1, *)
            guard offs[0] >= 0, offs[1] >= offs[0], offs[1] - offs[0] == count * width else {
                throw .badHeader(file: file, detail: "tensor '\(name)' offsets \(offs) do not match shape \(shape) of \(dtype)")
            }
            guard offs[1] <= dataCount else {
                throw .truncatedFile(file: file, detail: "tensor '\(name)' ends at byte \(offs[1]) of a \(dataCount)-byte data section")
            }
            var values = [Float](repeating: 0, count: count)
            let base = headerEnd + offs[0]
            for i in 0..<count {
                let o = base + i * width
                switch dtype {
                case "F32":
                    let bits = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
                    values[i] = Float(bitPattern: bits)
                case "F16":
                    values[i] = Float(Float16(bitPattern: UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8))
                default:
                    values[i] = Float(bitPattern: (UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8) << 16)
                }
            }
            out[name] = NamedTensor(name: name, shape: shape, values: values)
        }
        return out
    }

    /// Encodes tensors as F32 in the given order.
    public static func encode(_ tensors: [NamedTensor], metadata: [String: String] = [:]) -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.values.count]] as [String: Any]
            offset += 4 * t.values.count
        }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while json.count % 8 != 0 { json.append(0x20) }  // pad with spaces so data starts aligned
        var out = Data(capacity: 8 + json.count + offset)
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors {
            t.values.withUnsafeBufferPointer { out.append(contentsOf: UnsafeRawBufferPointer($0)) }  // host is little-endian
        }
        return out
    }

    public static func write(_ tensors: [NamedTensor], to url: URL, metadata: [String: String] = [:]) throws(EngineError) {
        do { try encode(tensors, metadata: metadata).write(to: url) } catch {
            throw .io(file: url.path, detail: "\(error.localizedDescription)")
        }
    }
}

import Foundation

/// table.json (ParadigmComparison) as HTML tables: the paradigm table, per-domain losses and the targets.
enum ParadigmTableHTML {
    static func section(_ c: ParadigmComparison) -> String {
        func num(_ x: Double?, _ format: String = "%.4f") -> String { x.map { $0.isFinite ? String(format: format, $0) : "\($0)" } ?? "–" }
        var s = "<h2>Paradigm comparison</h2>\n<table class=\"comparison\"><tr><th>paradigm</th><th>rounds</th>"
        s += "<th>final val loss</th><th>× FedAvg</th><th>sim time to FedAvg's loss</th><th>sim time</th><th>cloud-bound bytes</th><th>ARI</th></tr>\n"
        for p in c.paradigms {
            s += "<tr><td>\(htmlEscape(p.paradigm))</td><td>\(p.rounds)</td><td>\(num(p.finalValLoss))</td><td>\(num(p.ratioToFedAvg, "%.3f"))</td>"
            s += "<td>\(p.timeToFedAvgLossSeconds.map(durationString) ?? "–")</td><td>\(durationString(p.simTimeSeconds))</td>"
            s += "<td>\(byteString(p.cloudBoundBytes))</td><td>\(num(p.ari, "%.3f"))</td></tr>\n"
        }
        s += "</table>\n"
        let domains = Array(Set(c.paradigms.flatMap { $0.valLossByDomain.keys })).sorted()
        if !domains.isEmpty {
            s += "<table class=\"domains\"><tr><th>final val loss</th>" + domains.map { "<th>\(htmlEscape($0))</th>" }.joined() + "</tr>\n"
            for p in c.paradigms {
                s += "<tr><td>\(htmlEscape(p.paradigm))</td>" + domains.map { "<td>\(num(p.valLossByDomain[$0]))</td>" }.joined() + "</tr>\n"
            }
            s += "</table>\n"
        }
        if !c.targets.isEmpty {
            let met = c.targets.filter { $0.status == .met }.count
            s += "<h3>Targets: \(met) of \(c.targets.count) met</h3>\n<table class=\"targets\"><tr><th>target</th><th>measured</th><th>goal</th><th>status</th></tr>\n"
            for t in c.targets {
                let status = t.status == .met ? "met" : t.status == .missed ? "<b>missed</b>" : "not measured"
                s += "<tr><td>\(htmlEscape(t.description))</td><td>\(htmlEscape(t.measuredText))</td><td>\(htmlEscape(t.goal))</td><td>\(status)</td></tr>\n"
            }
            s += "</table>\n"
        }
        return s
    }
}

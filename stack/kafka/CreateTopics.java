// stack/kafka/CreateTopics.java - creates many topics in one JVM and one
// CreateTopics request (Kafka's AdminClient), for scripts/stack.sh.
//
//   java -cp <this dir>:<kafka libs>/* CreateTopics [--replication-factor N]
//        [--min-insync-replicas N] BOOTSTRAP PARTITIONS TOPIC...
//
// Replication factor 1 unless given (scripts/stack.sh passes min(3, brokers));
// min.insync.replicas set on each topic when given. Configs as
// `presencectl topics create` sets them (tools/ctl_topics.c, documented in
// docs/presencectl.md): cleanup.policy=delete everywhere; retention.ms one
// day for presence.heartbeats and the .retry topics, 30 days for the rest. A topic that already
// exists is fine if its partition count and replica count match; a mismatch
// is an error, because every input topic must have the same partition count
// (all records of one entity land in the same partition number) and a topic
// with fewer replicas than wanted loses records with a broker.
// Exit 0 on success, 1 on any error (printed to stderr). Why not
// TopicCommand: it costs one JVM start per topic (about 2 s of CPU each).
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.TopicExistsException;

public final class CreateTopics {
  static final String DAY_MS = "86400000";
  static final String MONTH_MS = "2592000000";

  static Map<String, String> configs(String topic, int minIsr) {
    boolean shortLived = topic.endsWith("presence.heartbeats") || topic.endsWith(".retry");
    Map<String, String> m = new java.util.HashMap<>();
    m.put("cleanup.policy", "delete");
    m.put("retention.ms", shortLived ? DAY_MS : MONTH_MS);
    if (minIsr > 0) m.put("min.insync.replicas", Integer.toString(minIsr));
    return m;
  }

  static void usage() {
    System.err.println("usage: CreateTopics [--replication-factor N] [--min-insync-replicas N] BOOTSTRAP PARTITIONS TOPIC...");
    System.exit(2);
  }

  public static void main(String[] argv) throws Exception {
    List<String> args = new ArrayList<>(List.of(argv));
    short factor = 1;
    int minIsr = 0; // 0: the broker's default
    while (args.size() >= 2 && args.get(0).startsWith("--")) {
      String opt = args.remove(0), val = args.remove(0);
      if (opt.equals("--replication-factor")) factor = Short.parseShort(val);
      else if (opt.equals("--min-insync-replicas")) minIsr = Integer.parseInt(val);
      else usage();
    }
    if (args.size() < 3 || factor < 1 || minIsr < 0 || minIsr > factor) usage();
    int partitions = Integer.parseInt(args.get(1));
    List<NewTopic> topics = new ArrayList<>();
    for (String name : args.subList(2, args.size()))
      topics.add(new NewTopic(name, partitions, factor).configs(configs(name, minIsr)));

    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args.get(0));
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
    int failed = 0;
    try (Admin admin = Admin.create(props)) {
      List<String> existing = new ArrayList<>();
      for (Map.Entry<String, KafkaFuture<Void>> e : admin.createTopics(topics).values().entrySet()) {
        try {
          e.getValue().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException ex) {
          if (ex.getCause() instanceof TopicExistsException) {
            existing.add(e.getKey());
          } else {
            System.err.println("CreateTopics: " + e.getKey() + ": " + ex.getCause());
            failed++;
          }
        }
      }
      if (!existing.isEmpty()) {
        Map<String, TopicDescription> d = admin.describeTopics(existing).allTopicNames().get(30, TimeUnit.SECONDS);
        for (TopicDescription t : d.values()) {
          if (t.partitions().size() != partitions) {
            System.err.println("CreateTopics: " + t.name() + " exists with " + t.partitions().size()
                + " partitions, wanted " + partitions);
            failed++;
          } else if (t.partitions().get(0).replicas().size() != factor) {
            System.err.println("CreateTopics: " + t.name() + " exists with " + t.partitions().get(0).replicas().size()
                + " replicas, wanted " + factor);
            failed++;
          }
        }
      }
    }
    System.exit(failed == 0 ? 0 : 1);
  }
}

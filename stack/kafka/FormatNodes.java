// stack/kafka/FormatNodes.java - formats the KRaft log dirs of several
// nodes in one JVM (kafka.tools.StorageTool's format, once per node
// config), for scripts/stack.sh up --brokers N.
//
//   java -cp <this dir>:<kafka libs>/* FormatNodes CLUSTER_ID CONFIG...
//
// Each node is formatted with --ignore-formatted (a kept log dir is left as
// it is). Exit 0 when every node is formatted, 1 otherwise (StorageTool's
// message on stderr). Why not StorageTool itself: one JVM start per node
// (about 2 s of CPU each).
import java.io.PrintStream;

public final class FormatNodes {
  public static void main(String[] args) {
    if (args.length < 2) {
      System.err.println("usage: FormatNodes CLUSTER_ID CONFIG...");
      System.exit(2);
    }
    PrintStream out = System.out;
    int failed = 0;
    for (int i = 1; i < args.length; i++) {
      try {
        int rc = kafka.tools.StorageTool.execute(
            new String[] {"format", "--ignore-formatted", "-t", args[0], "-c", args[i]}, out);
        if (rc != 0) {
          System.err.println("FormatNodes: " + args[i] + ": exit " + rc);
          failed++;
        }
      } catch (Exception e) {
        System.err.println("FormatNodes: " + args[i] + ": " + e);
        failed++;
      }
    }
    System.exit(failed == 0 ? 0 : 1);
  }
}
